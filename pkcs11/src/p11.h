/*
 * p11.h - internals shared by the files of libkms_pkcs11.so (docs/pkcs11.md).
 *
 * The module is untrusted client-side C: it holds no key material. Every operation on a key
 * becomes one kms.enclave.v1.Request sent to `kms agent` over its unix socket in the framed
 * protocol of proto/kms/proto/agent/v1/local.proto; the agent sends it through its attested
 * session and answers with the enclave's Response.
 *
 * Locking (CKF_OS_LOCKING_OK, pthreads only): g_p11.lock guards the module state (initialized
 * flag, session table, object table, login state); a session's own mutex guards its operation
 * state and is held for a whole call on that session, including the agent round trip; the
 * agent pool has its own lock. Order: session mutex, then g_p11.lock, then the pool lock;
 * g_p11.lock is never held across an agent round trip.
 */
#ifndef KMS_P11_H
#define KMS_P11_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <p11-kit/pkcs11.h>

#include "kms/proto/agent/v1/local.pb.h"

#define P11_EXPORT __attribute__((visibility("default")))

/* The one slot: one token per agent. */
#define P11_SLOT_ID 1UL
/* Largest message the enclave takes in one Sign/Mac/Encrypt (boundary.options). */
#define P11_MAX_DATA 32768u
/* The KMS ciphertext's header, nonce and tag (docs/formats.md): Encrypt adds this much. */
#define P11_GCM_OVERHEAD 70u
#define P11_KEY_ID_LEN 36u
/* The encryption-context key that carries CK_GCM_PARAMS.pAAD (docs/pkcs11.md). */
#define P11_AAD_CONTEXT_KEY "pkcs11-aad"

/* ---- module state (module.c) ---- */
struct p11_session;
struct p11_state {
    pthread_mutex_t lock;
    bool initialized;
    bool logged_in;        /* C_Login succeeded (token-wide, as PKCS#11 says) */
    bool login_required;   /* from the agent's TokenInfo, refreshed by C_GetTokenInfo */
};
extern struct p11_state g_p11;

/* CKR_CRYPTOKI_NOT_INITIALIZED unless C_Initialize ran. Takes and releases g_p11.lock. */
CK_RV p11_check_init(void);
/* Copies src into a blank-padded fixed field of n bytes (CK_UTF8CHAR, no NUL). */
void p11_pad(CK_UTF8CHAR *dst, size_t n, const char *src);

/* ---- agent connection pool (agent.c) ---- */
/* Sets the socket path (NULL: $KMS_PKCS11_SOCKET, else the default). Not thread-safe:
 * C_Initialize only. CKR_ARGUMENTS_BAD when the path does not fit a sockaddr_un. */
CK_RV p11_agent_init(const char *path);
/* Closes every connection and forgets the PIN (wiped). C_Finalize only. */
void p11_agent_fini(void);
/* One round trip: sends req, fills *resp (caller-owned, any content; overwritten). Thread-safe;
 * blocks while all pooled connections are busy. Returns CKR_OK when the agent answered with
 * AGENT_OK (the enclave's own refusal is then in resp->body.response.error), else the CK_RV for
 * the agent's error or for the connection failure (CKR_DEVICE_ERROR, CKR_USER_NOT_LOGGED_IN,
 * CKR_PIN_INCORRECT, CKR_HOST_MEMORY). idempotent: may be resent once on a fresh connection
 * when a pooled one turns out closed. */
CK_RV p11_agent_call(const LocalRequest *req, LocalResponse *resp, bool idempotent);
/* C_Login: checks pin with the agent on a fresh connection; on success keeps a copy (wiped on
 * logout) with which every pooled connection logs in before its next request. pin need not be
 * NUL-terminated; at most 128 bytes (else CKR_PIN_LEN_RANGE). */
CK_RV p11_agent_login(const CK_UTF8CHAR *pin, size_t pin_len);
/* C_Logout: forgets the PIN and closes every connection that logged in with it. */
void p11_agent_logout(void);
/* One enclave Request (req->body.request filled by the caller) and its Response: CKR_OK with
 * *resp holding the result, or the CK_RV of the agent's error or the enclave's ErrorCode
 * (through p11_kms_rv with the caller's mapping for data errors). */
CK_RV p11_enclave_call(LocalRequest *req, LocalResponse *resp, bool idempotent);
/* The CK_RV for an enclave ErrorCode (KMS_OK -> CKR_OK). */
CK_RV p11_kms_rv(ErrorCode err);
/* Heap pair for one round trip (a Request is ~45 KiB: never on the stack). NULL on ENOMEM. */
struct p11_msg {
    LocalRequest req;
    LocalResponse resp;
};
struct p11_msg *p11_msg_new(void);
/* Wipes (responses carry plaintext) and frees; NULL is a no-op. */
void p11_msg_free(struct p11_msg *m);

/* ---- framing (wire.c) ---- */
#define P11_MAX_FRAME 131072u
/* Encodes msg (fields of type, e.g. &LocalRequest_msg) as one frame and writes it all to fd.
 * CKR_OK, CKR_DEVICE_ERROR on a write failure, CKR_GENERAL_ERROR if it does not encode. */
CK_RV p11_frame_write(int fd, const pb_msgdesc_t *type, const void *msg);
/* Reads one frame from fd and decodes it into msg (caller-owned, zeroed first). CKR_OK,
 * CKR_DEVICE_ERROR on EOF/read failure/oversized/undecodable frame. */
CK_RV p11_frame_read(int fd, const pb_msgdesc_t *type, void *msg);

/* Writes to stderr when KMS_PKCS11_DEBUG=1 (never secrets: ids, codes, details). */
void p11_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- key objects (objects.c) ---- */
enum p11_kind { P11_PRIVATE = 1, P11_PUBLIC = 2, P11_SECRET = 3, P11_DERIVED = 4 };
struct p11_object {
    CK_OBJECT_HANDLE handle;
    enum p11_kind kind;
    char key_id[P11_KEY_ID_LEN + 1];
    KeySpec spec;
    KeyUsage usage;
    char label[258];               /* alias name or description */
    uint8_t *spki;                 /* public keys: SubjectPublicKeyInfo DER (owned) */
    size_t spki_len;
    uint8_t *value;                /* P11_DERIVED: the derived secret (owned, wiped) */
    size_t value_len;
    bool sensitive;                /* P11_DERIVED: CKA_SENSITIVE */
    CK_SESSION_HANDLE owner;       /* P11_DERIVED: the session that holds it */
    bool present;                  /* seen in the last listing */
    bool local;                    /* generated inside the enclave (CKA_LOCAL) */
};
/* Refreshes the object table from the agent (ListKeys, ListAliases, GetPublicKey); keeps
 * handles of keys already known. Thread-safe (takes g_p11.lock around table updates). */
CK_RV p11_objects_refresh(void);
/* Copies the object for handle into *out (spki/value pointers are NOT copied: out->spki and
 * out->value are duplicated with malloc and owned by the caller: free with p11_object_clear).
 * CKR_OBJECT_HANDLE_INVALID when unknown, not present, or a session object of another session
 * (session: the caller's). Private, secret and derived objects need a login when the token
 * requires one (CKR_USER_NOT_LOGGED_IN). */
CK_RV p11_object_get(CK_SESSION_HANDLE session, CK_OBJECT_HANDLE handle, struct p11_object *out);
void p11_object_clear(struct p11_object *o);
/* Handles of the objects visible to session (in table order) into a malloc'd array. */
CK_RV p11_objects_visible(CK_SESSION_HANDLE session, CK_OBJECT_HANDLE **out, size_t *count);
/* Adds a key the module just created (CreateKey's metadata) without a full refresh; returns the
 * handles of its objects (priv/pub for asymmetric, secret in *priv for symmetric). */
CK_RV p11_objects_add_created(const KeyMetadata *md, CK_OBJECT_HANDLE *priv, CK_OBJECT_HANDLE *pub);
/* Adds a session object holding a derived secret (takes ownership of value). */
CK_RV p11_objects_add_derived(CK_SESSION_HANDLE session, uint8_t *value, size_t len, bool sensitive,
                              const char *label, CK_OBJECT_HANDLE *out);
/* Drops a session object (C_DestroyObject) or every one of session (close). */
CK_RV p11_objects_destroy(CK_SESSION_HANDLE session, CK_OBJECT_HANDLE handle);
void p11_objects_drop_session(CK_SESSION_HANDLE session);
void p11_objects_fini(void);

/* ---- attributes (attrs.c) ---- */
/* C_GetAttributeValue for one object: the PKCS#11 rules for each template entry
 * (CKR_ATTRIBUTE_SENSITIVE, CKR_ATTRIBUTE_TYPE_INVALID, CKR_BUFFER_TOO_SMALL, lengths set to
 * CK_UNAVAILABLE_INFORMATION where they apply). */
CK_RV p11_attrs_get(const struct p11_object *o, CK_ATTRIBUTE *tmpl, CK_ULONG count);
/* Whether o matches every attribute of tmpl (C_FindObjectsInit). */
bool p11_attrs_match(const struct p11_object *o, const CK_ATTRIBUTE *tmpl, CK_ULONG count);
/* The PKCS#11 key type of a KeySpec (CKK_VENDOR_DEFINED for none). */
CK_KEY_TYPE p11_key_type(KeySpec spec);

/* ---- public keys (pubkey.c, OpenSSL) ---- */
/* The DER of CKA_EC_PARAMS (named curve OID) for an EC/EdDSA spec into buf (cap bytes):
 * length, or 0 when spec has none or it does not fit. */
size_t p11_ec_params(KeySpec spec, uint8_t *buf, size_t cap);
/* KeySpec for DER EC parameters (an OID, or PrintableString "edwards25519"); 0 if unknown. */
KeySpec p11_spec_from_ec_params(const uint8_t *der, size_t len);
/* CKA_EC_POINT (DER OCTET STRING of the point), CKA_MODULUS, CKA_PUBLIC_EXPONENT from an SPKI:
 * writes at most cap bytes into buf (buf NULL: only the length), *len the full length.
 * CKR_OK, CKR_ATTRIBUTE_TYPE_INVALID when the key has no such part, CKR_GENERAL_ERROR if the
 * SPKI does not parse. */
CK_RV p11_spki_part(const uint8_t *spki, size_t spki_len, CK_ATTRIBUTE_TYPE part, uint8_t *buf,
                    size_t cap, size_t *len);
/* An SPKI DER for a peer's EC point (raw uncompressed/compressed point, or a DER OCTET STRING
 * of one) on spec's curve, into *out (OpenSSL-allocated: OPENSSL_free). CKR_MECHANISM_PARAM_INVALID if it is not one. */
CK_RV p11_spki_from_point(KeySpec spec, const uint8_t *point, size_t len, uint8_t **out, size_t *out_len);

/* ---- sessions (session.c) ---- */
enum p11_op_kind { P11_OP_NONE = 0, P11_OP_SIGN, P11_OP_VERIFY, P11_OP_ENCRYPT, P11_OP_DECRYPT, P11_OP_FIND };
struct p11_op;
struct p11_session {
    CK_SESSION_HANDLE handle;
    CK_FLAGS flags;
    pthread_mutex_t mu;              /* held for a whole call on this session */
    unsigned refs;                   /* guarded by g_p11.lock */
    bool closed;                     /* guarded by g_p11.lock */
    struct p11_op *ops[6];           /* indexed by p11_op_kind, NULL when idle */
};
/* Looks up handle, takes a reference and locks its mutex: CKR_OK with *out, or
 * CKR_CRYPTOKI_NOT_INITIALIZED / CKR_SESSION_HANDLE_INVALID. Pair with p11_session_put. */
CK_RV p11_session_get(CK_SESSION_HANDLE handle, struct p11_session **out);
void p11_session_put(struct p11_session *s);
/* Whether this session may use private objects now (logged in, or no login required). */
bool p11_session_user_ok(void);
void p11_sessions_fini(void);

/* ---- operations (ops.c, sign.c, crypt.c) ---- */
void p11_op_free(struct p11_op *op);
/* Mechanism table (mechs.c): CKR_MECHANISM_INVALID when type is not offered for this key's spec
 * and usage, CKR_KEY_TYPE_INCONSISTENT when it is offered but not for this key. */
struct p11_mech {
    CK_MECHANISM_TYPE type;
    const char *name;
    CK_ULONG min_bits, max_bits;
    CK_FLAGS flags;
};
const struct p11_mech *p11_mech_find(CK_MECHANISM_TYPE type);
size_t p11_mech_count(void);
const struct p11_mech *p11_mech_at(size_t i);

#endif /* KMS_P11_H */
