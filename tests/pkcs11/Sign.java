// A SunPKCS11 signature with a key made in the enclave through libkms_pkcs11.so, verified by Java's own EC
// provider (tests/pkcs11/test_pkcs11_clients.py runs it: `java Sign.java CONFIG PIN`).
import java.security.*;
import java.security.spec.*;

public class Sign {
    public static void main(String[] a) throws Exception {
        Provider p = Security.getProvider("SunPKCS11").configure(a[0]);
        KeyStore ks = KeyStore.getInstance("PKCS11", p);
        ks.load(null, a[1].toCharArray());
        KeyPairGenerator g = KeyPairGenerator.getInstance("EC", p);
        g.initialize(new ECGenParameterSpec("secp256r1"));
        KeyPair kp = g.generateKeyPair();
        byte[] msg = "signed by a key in the enclave".getBytes("UTF-8");
        Signature s = Signature.getInstance("SHA256withECDSA", p);
        s.initSign(kp.getPrivate());
        s.update(msg);
        byte[] sig = s.sign();
        PublicKey pub = KeyFactory.getInstance("EC").generatePublic(new X509EncodedKeySpec(kp.getPublic().getEncoded()));
        Signature v = Signature.getInstance("SHA256withECDSA");
        v.initVerify(pub);
        v.update(msg);
        System.out.println((v.verify(sig) ? "VERIFIED by " : "BAD by ") + v.getProvider().getName()
            + ", signed by " + s.getProvider().getName());
    }
}
