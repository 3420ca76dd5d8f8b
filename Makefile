# Enclave KMS build. `./dev` (the README's commands) installs what this needs and calls it.
#
# Outputs (all under build/, never committed):
#   build/gen/                 nanopb C code generated from proto/
#   build/libkms_simcpu.so     the simulated SGX CPU + loader (untrusted, stands in for hardware)
#   build/kms_enclave.so       the trusted enclave image (exports kms_enclave_entry only)
#   build/kms_enclave.sigstruct  its SIGSTRUCT, signed with $(KMS_SIGNER_KEY)
#   kms/enclave/_native*.so    the cffi bridge module (untrusted C)
#   kms/proto/**/_pb2.py       Python protobuf modules
#   build/test/, build/fuzz/   C unit tests under ASan/UBSan, libFuzzer harness
#
# Module order below is the dependency DAG, users before what they use.

PYTHON      ?= .venv/bin/python
CC          ?= cc
CLANG       ?= clang
BUILD       := build
GEN         := $(BUILD)/gen
KMS_SIGNER_KEY ?= .local/dev-signer.pem
ENCLAVE_CONFIG ?= enclave/config/enclave.toml

NANOPB_GEN  ?= nanopb_generator.py
NANOPB_RUNTIME_VERSION := $(shell sed -n 's/^\#define NANOPB_VERSION "\(.*\)"/\1/p' /usr/include/pb.h 2>/dev/null)
MULTIARCH   := $(shell $(CC) -print-multiarch)
NANOPB_LIB  ?= /usr/lib/$(MULTIARCH)/libprotobuf-nanopb.a
GFSHARE_LIB ?= /usr/lib/$(MULTIARCH)/libgfshare.a
# Debian's jansson parses the join's TCB Info and QE Identity JSON (enclave/src/tcbinfo.c).
JANSSON_LIB ?= /usr/lib/$(MULTIARCH)/libjansson.a
# blst (supranational's BLS12-381 library, Ethereum validator keys: enclave/src/eth_bls.c). Not in Debian:
# its C and assembly sources come from the npm registry package @chainsafe/blst at exactly this version,
# whose tarball must match this integrity string (sha512, base64) before a byte of it is extracted. Built
# with the enclave's hardening flags into build/blst/ (never committed); provenance in docs/ethereum-keys.md.
BLST_PACKAGE   := @chainsafe/blst
BLST_VERSION   := 0.2.11
BLST_INTEGRITY := sha512-URyOLq5GtxBoxibOnd2pgLydCy0UZzbiIIBcsRAvGxAsRzjZL04TsQfwRkz5aphU3a1ebeRoMmI/HHyMCiFSQg==
BLST_DIR    := build/blst
BLST_TGZ    := $(BLST_DIR)/chainsafe-blst-$(BLST_VERSION).tgz
BLST_LIB    := $(BLST_DIR)/libblst.a
BLST_H      := build/gen/blst.h
# Static libraries linked into the enclave image (as an SGX build would link them).
ENCLAVE_STATIC_LIBS := $(NANOPB_LIB) $(GFSHARE_LIB) $(JANSSON_LIB) $(BLST_LIB)
# The image carries its own OpenSSL (as SGX-SSL does) and its own allocator (Debian's jemalloc,
# serving the heap range of ELRANGE: enclave/platform/sim/heap_sim.c); no host code shares them.
OPENSSL_STATIC_LIBS ?= /usr/lib/$(MULTIARCH)/libssl.a /usr/lib/$(MULTIARCH)/libcrypto.a
JEMALLOC_LIB ?= /usr/lib/$(MULTIARCH)/libjemalloc_pic.a
# Every allocation function the image's objects and static libraries reference goes to the
# wrappers in heap_sim.c (`make check-image` lists what is left undefined).
HEAP_WRAP   := -Wl,--wrap=malloc,--wrap=free,--wrap=calloc,--wrap=realloc,--wrap=strdup
ENCLAVE_LINK_LIBS = $(ENCLAVE_STATIC_LIBS) $(OPENSSL_STATIC_LIBS) $(JEMALLOC_LIB) $(HEAP_WRAP) \
                    -lpthread -ldl -lm
# The image holds jemalloc's initial-exec TLS (DF_STATIC_TLS): dlopen needs static TLS surplus,
# which glibc sizes at process start. Every program that loads an enclave starts with this
# (./dev, the Dockerfile, kms.enclave.runtime re-executes Python with it; see docs/simulation.md).
KMS_STATIC_TLS := glibc.rtld.optional_static_tls=262144
export GLIBC_TUNABLES ?= $(KMS_STATIC_TLS)

PROTOS      := $(shell find proto -name '*.proto' | sort)
# nanopb compiles only the enclave's messages; the gRPC API (proto/kms/proto/v1) is Python-only.
ENCLAVE_PROTOS := $(shell find proto/kms/proto/enclave -name '*.proto' | sort)
PB_C        := $(patsubst proto/%.proto,$(GEN)/%.pb.c,$(ENCLAVE_PROTOS))
PB_H        := $(PB_C:.c=.h)
# Generated headers every object may include.
GEN_H       := $(PB_H) $(BLST_H)

WARN        := -Wall -Wextra -Werror -Wformat=2 -Wshadow -Wstrict-prototypes -Wvla \
               -Wimplicit-fallthrough -Wundef -Wcast-qual -Wpointer-arith
HARDEN      := -fstack-protector-strong -fstack-clash-protection -fcf-protection \
               -D_FORTIFY_SOURCE=3 -fno-strict-overflow -fno-delete-null-pointer-checks
CSTD        := -std=c11 -D_GNU_SOURCE
INCLUDES    := -Ienclave/include -Ienclave/src -Ienclave/platform -I$(GEN)
CFLAGS_BASE := $(CSTD) -O2 -g $(WARN) $(HARDEN) -fPIC $(INCLUDES)
LDHARDEN    := -Wl,-z,relro,-z,now,-z,noexecstack,-z,separate-code,-z,defs

# Trusted enclave sources (ecall → dispatch → handlers → keystore/seal/crypto → util/platform).
ENCLAVE_PLATFORM_SRCS := enclave/platform/sim/platform_sim.c enclave/platform/sim/elrange_sim.c \
                         enclave/platform/sim/heap_sim.c enclave/platform/sim/stdin_sim.c
ENCLAVE_SRCS := $(sort $(wildcard enclave/src/*.c)) $(ENCLAVE_PLATFORM_SRCS)
CRYPTO_SRCS  := $(sort $(wildcard enclave/src/crypto*.c))
SIMCPU_SRCS  := $(sort $(wildcard enclave/platform/sim/simcpu*.c))
BRIDGE_SRCS  := enclave/bridge/bridge.c enclave/bridge/state_reader.c enclave/bridge/state_reader.h \
                enclave/bridge/audit_queue.c enclave/bridge/audit_queue.h

SAN_FLAGS   := -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
# KMS_WIPE_CHECK: every request slot is checked all-zero after its wipe (request_slot.h).
SAN_CFLAGS  := $(CSTD) $(WARN) $(SAN_FLAGS) $(INCLUDES) -DKMS_WIPE_CHECK
# Binaries compiled straight from sources depend on every project header (objects use -MMD).
HEADERS     := $(wildcard enclave/src/*.h enclave/include/kms/*.h enclave/platform/*.h enclave/platform/sim/*.h enclave/tests/*.h)

.PHONY: all enclave python sign check-nanopb check-image baseline reference ctest fuzz fuzz-smoke bench-state pkcs11 pkcs11-test clean distclean
all: enclave python sign

check-nanopb:
	@test -n "$(NANOPB_RUNTIME_VERSION)" || { echo "libnanopb-dev is missing (/usr/include/pb.h)"; exit 1; }
	@gen=$$($(NANOPB_GEN) --version 2>/dev/null); \
	 test "$$gen" = "$(NANOPB_RUNTIME_VERSION)" || { \
	   echo "nanopb generator '$$gen' does not match runtime '$(NANOPB_RUNTIME_VERSION)'"; exit 1; }

$(GEN)/%.pb.c $(GEN)/%.pb.h: proto/%.proto $(wildcard proto/*/*/*/*/*.options) | check-nanopb
	@mkdir -p $(GEN)
	$(NANOPB_GEN) -q -I proto -D $(GEN) $< 
	@! grep -n 'pb_callback_t' $(GEN)/$*.pb.h || { echo "unbounded (CALLBACK) field in $<: add max_size/max_count"; exit 1; }

# ---- blst: fetch by exact version, check the integrity string, then extract and build -------------
# The tarball is written under a temporary name and renamed only once its digest matched, so an
# unverified download never reaches tar. The flags are the enclave's (CFLAGS_BASE's -O2 and hardening,
# -fPIC, hidden visibility); __BLST_PORTABLE__ selects the CPU's instructions at run time instead of
# the build machine's. blst allocates nothing itself (no malloc: `make check-image`).
BLST_CFLAGS := -O2 -fno-builtin -fPIC -fvisibility=hidden -Wall -Wextra -Werror $(HARDEN) -D__BLST_PORTABLE__

$(BLST_TGZ):
	@mkdir -p $(BLST_DIR)/fetch
	rm -f $(BLST_DIR)/fetch/*.tgz
	cd $(BLST_DIR)/fetch && env -u GLIBC_TUNABLES npm pack --silent --cache ../npm-cache $(BLST_PACKAGE)@$(BLST_VERSION) >/dev/null
	@got="sha512-$$(openssl dgst -sha512 -binary $(BLST_DIR)/fetch/*.tgz | base64 -w0)"; \
	 test "$$got" = "$(BLST_INTEGRITY)" || { echo "$(BLST_PACKAGE)@$(BLST_VERSION): integrity $$got is not the pinned $(BLST_INTEGRITY)"; rm -f $(BLST_DIR)/fetch/*.tgz; exit 1; }
	mv $(BLST_DIR)/fetch/*.tgz $@

$(BLST_LIB) $(BLST_H) &: $(BLST_TGZ)
	rm -rf $(BLST_DIR)/package
	tar -xzf $< -C $(BLST_DIR) --no-same-owner --no-same-permissions package/blst package/LICENSE
	chmod +x $(BLST_DIR)/package/blst/build.sh
	cd $(BLST_DIR)/package/blst && { CC=$(CC) CFLAGS="$(BLST_CFLAGS)" ./build.sh >build.log 2>&1 || { cat build.log; exit 1; }; }
	@mkdir -p $(GEN)
	cp $(BLST_DIR)/package/blst/bindings/blst.h $(BLST_DIR)/package/blst/bindings/blst_aux.h $(GEN)/
	cp $(BLST_DIR)/package/blst/libblst.a $(BLST_LIB)

# ---- trusted enclave -------------------------------------------------------------------
ENCLAVE_OBJS := $(patsubst %.c,$(BUILD)/obj/%.o,$(ENCLAVE_SRCS) $(PB_C))
SIMCPU_OBJS  := $(patsubst %.c,$(BUILD)/obj/%.o,$(SIMCPU_SRCS))

$(BUILD)/obj/%.o: %.c $(GEN_H)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) -fvisibility=hidden -MMD -MP -c $< -o $@

$(BUILD)/libkms_simcpu.so: $(SIMCPU_OBJS) enclave/platform/sim/simcpu.lds
	$(CC) -shared -o $@ $(SIMCPU_OBJS) $(LDHARDEN) -Wl,-soname,libkms_simcpu.so \
	  -Wl,--version-script=enclave/platform/sim/simcpu.lds -lcrypto -lpthread

# No rpath: the loader maps the image from a sealed memfd; libkms_simcpu.so is already loaded.
$(BUILD)/kms_enclave.so: $(ENCLAVE_OBJS) enclave/kms_enclave.lds $(BUILD)/libkms_simcpu.so
	$(CC) -shared -o $@ $(ENCLAVE_OBJS) $(ENCLAVE_LINK_LIBS) $(LDHARDEN) \
	  -Wl,--version-script=enclave/kms_enclave.lds -L$(BUILD) -lkms_simcpu

enclave: $(BUILD)/kms_enclave.so $(BUILD)/libkms_simcpu.so

# What the image takes from the process: no OpenSSL, no allocator, one exported symbol.
check-image: $(BUILD)/kms_enclave.so
	@! ldd $< | grep -E 'lib(crypto|ssl|jemalloc)' || { echo "the image links a shared OpenSSL/jemalloc"; exit 1; }
	@test "$$(nm -D --defined-only $< | awk '{print $$3}')" = kms_enclave_entry || { echo "exports beyond the entry"; exit 1; }
	@! nm -D --undefined-only $< | grep -wE 'malloc|calloc|realloc|free|posix_memalign|aligned_alloc|memalign|strdup|strndup' \
	  || { echo "an allocation function escapes the heap arena"; exit 1; }
	@echo "check-image: no shared OpenSSL, only kms_enclave_entry exported, every allocation wrapped"

# ---- baseline variant (benchmarks only): the image as it was before the heap arena --------
# Dynamic Debian OpenSSL, glibc malloc, the enclave on the host thread's stack (no TCS stack
# switch). Same sources built with -DKMS_SIM_BASELINE; the CPU has its own soname so both
# variants load in one process (tests/bench/bench_enclave.py). Never used outside benchmarks.
BASELINE    := $(BUILD)/baseline
BASELINE_ENCLAVE_OBJS := $(patsubst %.c,$(BASELINE)/obj/%.o,$(ENCLAVE_SRCS) $(PB_C))
BASELINE_SIMCPU_OBJS  := $(patsubst %.c,$(BASELINE)/obj/%.o,$(SIMCPU_SRCS))

$(BASELINE)/obj/%.o: %.c $(GEN_H)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) -DKMS_SIM_BASELINE -fvisibility=hidden -MMD -MP -c $< -o $@

$(BASELINE)/libkms_simcpu_baseline.so: $(BASELINE_SIMCPU_OBJS) enclave/platform/sim/simcpu.lds
	$(CC) -shared -o $@ $(BASELINE_SIMCPU_OBJS) $(LDHARDEN) -Wl,-soname,libkms_simcpu_baseline.so \
	  -Wl,--version-script=enclave/platform/sim/simcpu.lds -lcrypto -lpthread

$(BASELINE)/kms_enclave.so: $(BASELINE_ENCLAVE_OBJS) enclave/kms_enclave.lds $(BASELINE)/libkms_simcpu_baseline.so
	$(CC) -shared -o $@ $(BASELINE_ENCLAVE_OBJS) $(ENCLAVE_STATIC_LIBS) $(LDHARDEN) \
	  -Wl,--version-script=enclave/kms_enclave.lds -L$(BASELINE) -lkms_simcpu_baseline -lssl -lcrypto -lpthread

$(BASELINE)/kms_enclave.sigstruct: $(BASELINE)/kms_enclave.so $(ENCLAVE_CONFIG) $(KMS_SIGNER_KEY) | $(PY_PB)
	$(call SIGN_IMAGE,$(KMS_SIGNER_KEY),$(ENCLAVE_CONFIG),$<)

baseline: $(BASELINE)/kms_enclave.sigstruct

# ---- reference tree (benchmarks only): another revision, built -------------------------------
# `make reference [REFERENCE=rev]` (default: where this branch left main) unpacks that revision with `git
# archive` into build/reference/src and builds it there with its own Makefile (enclave signed with
# $(KMS_SIGNER_KEY), protobuf modules, the cffi bridge), noting the revision in build/reference/revision.
# tests/bench/bench_enclave.py loads its image next to build/'s, and tests/bench/bench_service.py runs its
# `kms serve` next to this tree's, for before/after figures in one run. Never used outside benchmarks.
REFERENCE   ?= $(shell git merge-base HEAD main 2>/dev/null || git rev-parse HEAD)
REF_DIR     := $(BUILD)/reference
reference: $(KMS_SIGNER_KEY)
	@rev=$$(git rev-parse $(REFERENCE)); test "$$(cat $(REF_DIR)/revision 2>/dev/null)" = "$$rev" || { \
	  rm -rf $(REF_DIR) && mkdir -p $(REF_DIR)/src && git archive $$rev | tar -x -C $(REF_DIR)/src && \
	  $(MAKE) -s -C $(REF_DIR)/src all PYTHON=$(abspath $(PYTHON)) KMS_SIGNER_KEY=$(abspath $(KMS_SIGNER_KEY)) \
	    >/dev/null && echo $$rev > $(REF_DIR)/revision; }

$(KMS_SIGNER_KEY):
	$(PYTHON) -m kms enclave keygen --out $@

$(BUILD)/kms_enclave.sigstruct: $(BUILD)/kms_enclave.so $(ENCLAVE_CONFIG) $(KMS_SIGNER_KEY)
	$(PYTHON) -m kms enclave sign --key $(KMS_SIGNER_KEY) --config $(ENCLAVE_CONFIG) \
	  --image $(BUILD)/kms_enclave.so --out $@

sign: $(BUILD)/kms_enclave.sigstruct

# ---- Python side: protobuf modules and the cffi bridge ----------------------------------
PY_PB := $(patsubst proto/%.proto,%_pb2.py,$(PROTOS))
$(PY_PB): %_pb2.py: proto/%.proto
	$(PYTHON) -m grpc_tools.protoc -I proto --python_out=. --pyi_out=. --grpc_python_out=. $<

python: $(PY_PB) $(BUILD)/.bridge-stamp
$(BUILD)/.bridge-stamp: $(BRIDGE_SRCS) enclave/include/kms/bridge.h enclave/include/kms/edge.h enclave/include/kms/simcpu.h kms/enclave/_build.py
	$(PYTHON) kms/enclave/_build.py
	@touch $@

# ---- sanitizer copies of the simulated CPU and the enclave image -------------------------
# Same sources as the production image (ENCLAVE_SRCS + generated nanopb + Debian's nanopb
# runtime), each copy signed with $(KMS_SIGNER_KEY):
#   build/asan/  gcc, ASan + UBSan: what the C unit tests load through simcpu_ecall;
#   build/fuzz/  clang, ASan + UBSan + libFuzzer coverage: what the fuzz harness loads.
# Sanitized shared objects leave the sanitizer runtime to the executable, so -z,defs is
# dropped for the clang copies.
ASAN        := $(BUILD)/asan
FUZZ        := $(BUILD)/fuzz
ERRORS_PROTO := proto/kms/proto/enclave/v1/errors.proto
# Every ErrorCode value as KMS_ERROR_CODE(name), so hosts can tell a listed code from any other.
ERROR_CODES := $(GEN)/kms_error_codes.inc

$(ERROR_CODES): $(ERRORS_PROTO)
	@mkdir -p $(dir $@)
	sed -n 's/^ *\(KMS_[A-Z0-9_]*\) *= *[0-9][0-9]* *;.*/KMS_ERROR_CODE(\1)/p' $< > $@

SAN_LDFLAGS := -Wl,-z,relro,-z,now,-z,noexecstack
SIGN_IMAGE   = $(PYTHON) -m kms enclave sign --key $(1) --config $(2) --image $(3) --out $@ >/dev/null

ASAN_CFLAGS := $(SAN_CFLAGS) -fPIC
ASAN_ENCLAVE_OBJS := $(patsubst %.c,$(ASAN)/obj/%.o,$(ENCLAVE_SRCS) $(PB_C))
ASAN_SIMCPU_OBJS  := $(patsubst %.c,$(ASAN)/obj/%.o,$(SIMCPU_SRCS))

$(ASAN)/obj/%.o: %.c $(GEN_H)
	@mkdir -p $(dir $@)
	$(CC) $(ASAN_CFLAGS) -fvisibility=hidden -MMD -MP -c $< -o $@

$(ASAN)/libkms_simcpu.so: $(ASAN_SIMCPU_OBJS) enclave/platform/sim/simcpu.lds
	$(CC) $(SAN_FLAGS) -shared -o $@ $(ASAN_SIMCPU_OBJS) $(LDHARDEN) -Wl,-soname,libkms_simcpu.so \
	  -Wl,--version-script=enclave/platform/sim/simcpu.lds -lcrypto -lpthread

$(ASAN)/kms_enclave.so: $(ASAN_ENCLAVE_OBJS) enclave/kms_enclave.lds $(ASAN)/libkms_simcpu.so
	$(CC) $(SAN_FLAGS) -shared -o $@ $(ASAN_ENCLAVE_OBJS) $(ENCLAVE_LINK_LIBS) $(LDHARDEN) \
	  -Wl,--version-script=enclave/kms_enclave.lds -L$(ASAN) -lkms_simcpu

# Test-only enclave images (never the production enclave): stub_enclave.c exposes EGETKEY,
# EREPORT and an OCALL to test_simcpu; variant b differs only in its bytes (MRENCLAVE).
STUB_LINK = $(CC) $(ASAN_CFLAGS) -fvisibility=hidden -shared -o $@ $< $(LDHARDEN) \
	  -Wl,--version-script=enclave/kms_enclave.lds -L$(ASAN) -lkms_simcpu
$(ASAN)/stub_enclave.so: enclave/tests/stub_enclave.c $(ASAN)/libkms_simcpu.so
	$(STUB_LINK) -DSTUB_VARIANT=1
$(ASAN)/stub_enclave_b.so: enclave/tests/stub_enclave.c $(ASAN)/libkms_simcpu.so
	$(STUB_LINK) -DSTUB_VARIANT=2

# `kms enclave keygen/sign` import kms.errors, which needs the generated protobuf modules
# (a fresh clone running `make ctest` or `make fuzz` before `make all`).
$(KMS_SIGNER_KEY): | $(PY_PB)

# Identities for the EGETKEY/sealing tests: ISVSVN 2 from the same config, and a second signer.
$(ASAN)/enclave-svn2.toml: $(ENCLAVE_CONFIG)
	@mkdir -p $(dir $@)
	sed 's/^isv_svn *=.*/isv_svn = 2/' $< > $@
$(ASAN)/other-signer.pem: | $(PY_PB)
	@mkdir -p $(dir $@)
	$(PYTHON) -m kms enclave keygen --out $@ >/dev/null
$(ASAN)/%.sigstruct: $(ASAN)/%.so $(ENCLAVE_CONFIG) $(KMS_SIGNER_KEY) | $(PY_PB)
	$(call SIGN_IMAGE,$(KMS_SIGNER_KEY),$(ENCLAVE_CONFIG),$<)
$(ASAN)/%.svn2.sigstruct: $(ASAN)/%.so $(ASAN)/enclave-svn2.toml $(KMS_SIGNER_KEY) | $(PY_PB)
	$(call SIGN_IMAGE,$(KMS_SIGNER_KEY),$(ASAN)/enclave-svn2.toml,$<)
$(ASAN)/%.other.sigstruct: $(ASAN)/%.so $(ENCLAVE_CONFIG) $(ASAN)/other-signer.pem | $(PY_PB)
	$(call SIGN_IMAGE,$(ASAN)/other-signer.pem,$(ENCLAVE_CONFIG),$<)

ASAN_IMAGES := $(ASAN)/kms_enclave.sigstruct $(ASAN)/kms_enclave.svn2.sigstruct \
               $(ASAN)/kms_enclave.other.sigstruct $(ASAN)/stub_enclave.sigstruct \
               $(ASAN)/stub_enclave.svn2.sigstruct $(ASAN)/stub_enclave.other.sigstruct \
               $(ASAN)/stub_enclave_b.sigstruct
.SECONDARY: $(ASAN_IMAGES) $(ASAN)/enclave-svn2.toml $(ASAN)/other-signer.pem

# ---- C tests under ASan + UBSan ----------------------------------------------------------
# test_crypto links the crypto module; the host-side tests (TEST_HOST_BINS) load the ASan
# enclave through build/asan/libkms_simcpu.so and reach it only through simcpu_ecall. Each
# prints "N passed, M failed" last and exits non-zero on failure.
TEST_BINS := $(patsubst enclave/tests/%.c,$(BUILD)/test/%,$(sort $(wildcard enclave/tests/test_*.c)))
TEST_HOST_BINS := $(BUILD)/test/test_boundary $(BUILD)/test/test_simcpu $(BUILD)/test/test_elrange
TEST_HOST_SRCS := enclave/tests/testhost.c $(PB_C)
TEST_HOST_DEPS := $(TEST_HOST_SRCS) $(HEADERS) $(PB_H) $(ERROR_CODES) $(BLST_LIB)

$(BUILD)/test/wycheproof_runner: enclave/tests/wycheproof_runner.c $(HEADERS) $(CRYPTO_SRCS) $(PB_H)
	@mkdir -p $(dir $@)
	$(CC) $(SAN_CFLAGS) -o $@ $< $(CRYPTO_SRCS) -lcrypto

# The Ethereum code (BLS through blst, SSZ roots) against its vectors (tests/eth/test_eth_vectors.py).
ETH_SRCS := enclave/src/eth_bls.c enclave/src/eth_ssz.c
$(BUILD)/test/eth_runner: enclave/tests/eth_runner.c $(HEADERS) $(ETH_SRCS) $(CRYPTO_SRCS) $(GEN_H) $(BLST_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(SAN_CFLAGS) -o $@ $< $(ETH_SRCS) $(CRYPTO_SRCS) $(BLST_LIB) -lcrypto

$(BUILD)/test/test_crypto: enclave/tests/test_crypto.c $(HEADERS) $(CRYPTO_SRCS) $(PB_H)
	@mkdir -p $(dir $@)
	$(CC) $(SAN_CFLAGS) -o $@ $< $(CRYPTO_SRCS) -lcrypto

# The bridge's own C (the OCALLs it answers without Python), host code only.
BRIDGE_C_SRCS := enclave/bridge/audit_queue.c enclave/bridge/state_reader.c
$(BUILD)/test/test_bridge_queues: enclave/tests/test_bridge_queues.c $(BRIDGE_SRCS) enclave/tests/test_util.h
	@mkdir -p $(dir $@)
	$(CC) $(SAN_CFLAGS) -Ienclave/tests -Ienclave/bridge -o $@ $< $(BRIDGE_C_SRCS) -lsqlite3 -lpthread

$(TEST_HOST_BINS): $(BUILD)/test/%: enclave/tests/%.c $(TEST_HOST_DEPS) enclave/tests/test_util.h \
                   $(ASAN)/libkms_simcpu.so $(ASAN_IMAGES)
	@mkdir -p $(dir $@)
	$(CC) $(SAN_CFLAGS) -Ienclave/tests -o $@ $< $(TEST_HOST_SRCS) $(ENCLAVE_STATIC_LIBS) \
	  -L$(ASAN) -lkms_simcpu -Wl,-rpath,'$$ORIGIN/../asan' -lcrypto -lpthread

# Unit tests (any other test_*.c): the enclave modules linked in directly, with the unit host
# (enclave/tests/unit_host.c: a fake platform and in-memory OCALLs) in place of the trusted
# edge and the simulated CPU (and glibc's malloc in place of the heap arena), so a test calls
# trusted functions as trusted code does.
UNIT        := $(BUILD)/unit
UNIT_SRCS   := $(filter-out enclave/src/edge.c $(ENCLAVE_PLATFORM_SRCS),$(ENCLAVE_SRCS)) \
               enclave/tests/unit_host.c
UNIT_OBJS   := $(patsubst %.c,$(UNIT)/obj/%.o,$(UNIT_SRCS) $(PB_C))

$(UNIT)/obj/%.o: %.c $(GEN_H)
	@mkdir -p $(dir $@)
	$(CC) $(SAN_CFLAGS) -Ienclave/tests -DKMS_TEST_BUILD -MMD -MP -c $< -o $@

$(BUILD)/test/%: enclave/tests/%.c $(UNIT_OBJS) $(HEADERS) enclave/tests/test_util.h
	@mkdir -p $(dir $@)
	$(CC) $(SAN_CFLAGS) -Ienclave/tests -o $@ $< $(UNIT_OBJS) $(ENCLAVE_STATIC_LIBS) -lssl -lcrypto -lpthread

# The state-integrity benchmark (tests/bench/bench_state.py): the unit-test sources built with the
# production flags (no sanitizers), so its figures are the enclave's own work.
BENCH       := $(BUILD)/bench
BENCH_OBJS  := $(patsubst %.c,$(BENCH)/obj/%.o,$(UNIT_SRCS) $(PB_C))

$(BENCH)/obj/%.o: %.c $(GEN_H)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) -Ienclave/tests -DKMS_TEST_BUILD -MMD -MP -c $< -o $@

$(BENCH)/bench_state: enclave/tests/bench_state.c $(BENCH_OBJS) $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) -Ienclave/tests -o $@ $< $(BENCH_OBJS) $(ENCLAVE_STATIC_LIBS) -lssl -lcrypto -lpthread

bench-state: $(BENCH)/bench_state
	$(BENCH)/bench_state

ctest: $(TEST_BINS) $(BUILD)/test/wycheproof_runner $(BUILD)/test/eth_runner
	@for t in $(TEST_BINS); do echo "== $$t"; $$t || { echo "FAILED: $$t"; exit 1; }; done

# ---- libFuzzer on the call ECALL ---------------------------------------------------------
# `make fuzz-smoke FUZZ_SECONDS=30`: a bounded run over the generated seeds and the corpus in
# build/fuzz/corpus; exits non-zero on any crash, leak, sanitizer report or timeout.
# Longer runs: docs/fuzzing.md.
FUZZ_SECONDS ?= 30
FUZZ_SAN    := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_CFLAGS := $(CSTD) -O1 -g $(WARN) $(FUZZ_SAN) -fPIC $(INCLUDES) -DKMS_WIPE_CHECK
FUZZ_ENCLAVE_OBJS := $(patsubst %.c,$(FUZZ)/obj/%.o,$(ENCLAVE_SRCS) $(PB_C))
FUZZ_SIMCPU_OBJS  := $(patsubst %.c,$(FUZZ)/obj/%.o,$(SIMCPU_SRCS))
FUZZ_FLAGS  := -max_len=65600 -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 \
               -dict=enclave/fuzz/boundary.dict -artifact_prefix=$(FUZZ)/artifacts/

$(FUZZ)/obj/%.o: %.c $(GEN_H)
	@mkdir -p $(dir $@)
	$(CLANG) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -fvisibility=hidden -MMD -MP -c $< -o $@

$(FUZZ)/libkms_simcpu.so: $(FUZZ_SIMCPU_OBJS) enclave/platform/sim/simcpu.lds
	$(CLANG) $(FUZZ_SAN) -fsanitize=fuzzer-no-link -shared -o $@ $(FUZZ_SIMCPU_OBJS) $(SAN_LDFLAGS) \
	  -Wl,-soname,libkms_simcpu.so -Wl,--version-script=enclave/platform/sim/simcpu.lds -lcrypto -lpthread

$(FUZZ)/kms_enclave.so: $(FUZZ_ENCLAVE_OBJS) enclave/kms_enclave.lds $(FUZZ)/libkms_simcpu.so
	$(CLANG) $(FUZZ_SAN) -fsanitize=fuzzer-no-link -shared -o $@ $(FUZZ_ENCLAVE_OBJS) $(ENCLAVE_LINK_LIBS) \
	  $(SAN_LDFLAGS) -Wl,--version-script=enclave/kms_enclave.lds -L$(FUZZ) -lkms_simcpu

$(FUZZ)/kms_enclave.sigstruct: $(FUZZ)/kms_enclave.so $(ENCLAVE_CONFIG) $(KMS_SIGNER_KEY) | $(PY_PB)
	$(call SIGN_IMAGE,$(KMS_SIGNER_KEY),$(ENCLAVE_CONFIG),$<)

$(FUZZ)/fuzz_ecall: enclave/fuzz/fuzz_ecall.c $(TEST_HOST_DEPS) $(FUZZ)/libkms_simcpu.so \
                    $(FUZZ)/kms_enclave.sigstruct
	$(CLANG) $(FUZZ_CFLAGS) -fsanitize=fuzzer -Ienclave/tests -o $@ enclave/fuzz/fuzz_ecall.c \
	  $(TEST_HOST_SRCS) $(ENCLAVE_STATIC_LIBS) -L$(FUZZ) -lkms_simcpu -Wl,-rpath,'$$ORIGIN' -lcrypto -lpthread

# Seeds: one valid encoded Request per operation (and a few invalid ones), never committed.
$(FUZZ)/seeds.stamp: enclave/fuzz/make_seeds.py $(PY_PB)
	@rm -rf $(FUZZ)/seeds
	$(PYTHON) enclave/fuzz/make_seeds.py $(FUZZ)/seeds
	@touch $@

fuzz: $(FUZZ)/fuzz_ecall $(FUZZ)/seeds.stamp

fuzz-smoke: fuzz
	@rm -rf $(FUZZ)/run
	@mkdir -p $(FUZZ)/corpus $(FUZZ)/artifacts
	$(FUZZ)/fuzz_ecall -max_total_time=$(FUZZ_SECONDS) $(FUZZ_FLAGS) $(FUZZ)/corpus $(FUZZ)/seeds

# ---- PKCS#11 module (untrusted C, client side; docs/pkcs11.md) ----------------------------
# build/libkms_pkcs11.so talks to `kms agent` in the framed protocol of
# proto/kms/proto/agent/v1/local.proto (nanopb, bounds in local.options + boundary.options).
# Debian's p11-kit ships the Cryptoki header; OpenSSL parses public keys and hashes.
# `make pkcs11-test`: the module's C unit tests (pkcs11/tests/, a fake agent in-process) under
# ASan + UBSan, with the module's sources compiled into the test program.
P11_PROTOS  := proto/kms/proto/enclave/v1/errors.proto proto/kms/proto/enclave/v1/boundary.proto \
               proto/kms/proto/agent/v1/local.proto
P11_PB_C    := $(patsubst proto/%.proto,$(GEN)/%.pb.c,$(P11_PROTOS))
P11_PB_H    := $(P11_PB_C:.c=.h)
P11_SRCS    := $(sort $(wildcard pkcs11/src/*.c))
P11_HEADERS := $(wildcard pkcs11/src/*.h)
P11_INCLUDES := -Ipkcs11/src -I$(GEN) $(shell pkg-config --cflags p11-kit-1 2>/dev/null || echo -I/usr/include/p11-kit-1)
P11_CFLAGS  := $(CSTD) -O2 -g $(WARN) $(HARDEN) -fPIC -fvisibility=hidden $(P11_INCLUDES)
P11_OBJS    := $(patsubst %.c,$(BUILD)/p11/obj/%.o,$(P11_SRCS) $(P11_PB_C))
P11_TESTS   := $(patsubst pkcs11/tests/%.c,$(BUILD)/p11/test/%,$(sort $(wildcard pkcs11/tests/test_*.c)))

$(BUILD)/p11/obj/%.o: %.c $(P11_PB_H)
	@mkdir -p $(dir $@)
	$(CC) $(P11_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/libkms_pkcs11.so: $(P11_OBJS) pkcs11/kms_pkcs11.lds
	$(CC) -shared -o $@ $(P11_OBJS) $(NANOPB_LIB) $(LDHARDEN) -Wl,-soname,libkms_pkcs11.so \
	  -Wl,--version-script=pkcs11/kms_pkcs11.lds -lcrypto -lpthread

pkcs11: $(BUILD)/libkms_pkcs11.so

$(P11_TESTS): $(BUILD)/p11/test/%: pkcs11/tests/%.c pkcs11/tests/fake_agent.c pkcs11/tests/fake_agent.h \
              $(P11_SRCS) $(P11_HEADERS) $(P11_PB_C) $(P11_PB_H) enclave/tests/test_util.h
	@mkdir -p $(dir $@)
	$(CC) $(SAN_CFLAGS) $(P11_INCLUDES) -Ienclave/tests -Ipkcs11/tests -o $@ $< pkcs11/tests/fake_agent.c \
	  $(P11_SRCS) $(P11_PB_C) $(NANOPB_LIB) -lcrypto -lpthread

pkcs11-test: $(P11_TESTS)
	@for t in $(P11_TESTS); do echo "== $$t"; $$t || { echo "FAILED: $$t"; exit 1; }; done

clean:
	rm -rf $(BUILD) kms/enclave/_native*.so kms/enclave/_native.c kms/enclave/_native.o
	find kms/proto -name '*_pb2.py*' -delete 2>/dev/null || true
distclean: clean
	rm -rf .venv .local

# Header dependencies recorded by -MMD.
-include $(shell find $(BUILD)/obj $(BUILD)/p11 $(BUILD)/asan $(BUILD)/fuzz $(BUILD)/unit $(BUILD)/baseline $(BUILD)/bench -name '*.d' -type f 2>/dev/null)
