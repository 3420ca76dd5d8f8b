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
NANOPB_LIB  ?= /usr/lib/$(shell $(CC) -print-multiarch)/libprotobuf-nanopb.a

PROTOS      := $(shell find proto -name '*.proto' | sort)
PB_C        := $(patsubst proto/%.proto,$(GEN)/%.pb.c,$(PROTOS))
PB_H        := $(PB_C:.c=.h)

WARN        := -Wall -Wextra -Werror -Wformat=2 -Wshadow -Wstrict-prototypes -Wvla \
               -Wimplicit-fallthrough -Wundef -Wcast-qual -Wpointer-arith
HARDEN      := -fstack-protector-strong -fstack-clash-protection -fcf-protection \
               -D_FORTIFY_SOURCE=3 -fno-strict-overflow -fno-delete-null-pointer-checks
CSTD        := -std=c11 -D_GNU_SOURCE
INCLUDES    := -Ienclave/include -Ienclave/src -Ienclave/platform -I$(GEN)
CFLAGS_BASE := $(CSTD) -O2 -g $(WARN) $(HARDEN) -fPIC $(INCLUDES)
LDHARDEN    := -Wl,-z,relro,-z,now,-z,noexecstack,-z,separate-code,-z,defs

# Trusted enclave sources (ecall → dispatch → handlers → keystore/seal/crypto → util/platform).
ENCLAVE_SRCS := $(sort $(wildcard enclave/src/*.c)) enclave/platform/sim/platform_sim.c
CRYPTO_SRCS  := $(sort $(wildcard enclave/src/crypto*.c))
SIMCPU_SRCS  := $(sort $(wildcard enclave/platform/sim/simcpu*.c))
BRIDGE_SRCS  := enclave/bridge/bridge.c

SAN_FLAGS   := -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
SAN_CFLAGS  := $(CSTD) $(WARN) $(SAN_FLAGS) $(INCLUDES)

.PHONY: all enclave python sign check-nanopb ctest fuzz-smoke clean distclean
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

# ---- trusted enclave -------------------------------------------------------------------
ENCLAVE_OBJS := $(patsubst %.c,$(BUILD)/obj/%.o,$(ENCLAVE_SRCS) $(PB_C))
SIMCPU_OBJS  := $(patsubst %.c,$(BUILD)/obj/%.o,$(SIMCPU_SRCS))

$(BUILD)/obj/%.o: %.c $(PB_H)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) -fvisibility=hidden -c $< -o $@

$(BUILD)/libkms_simcpu.so: $(SIMCPU_OBJS) enclave/platform/sim/simcpu.lds
	$(CC) -shared -o $@ $(SIMCPU_OBJS) $(LDHARDEN) -Wl,-soname,libkms_simcpu.so \
	  -Wl,--version-script=enclave/platform/sim/simcpu.lds -lcrypto -lpthread

$(BUILD)/kms_enclave.so: $(ENCLAVE_OBJS) enclave/kms_enclave.lds $(BUILD)/libkms_simcpu.so
	$(CC) -shared -o $@ $(ENCLAVE_OBJS) $(NANOPB_LIB) $(LDHARDEN) \
	  -Wl,--version-script=enclave/kms_enclave.lds -Wl,-rpath,'$$ORIGIN' \
	  -L$(BUILD) -lkms_simcpu -lcrypto -lpthread

enclave: $(BUILD)/kms_enclave.so $(BUILD)/libkms_simcpu.so

$(KMS_SIGNER_KEY):
	$(PYTHON) -m kms enclave keygen --out $@

$(BUILD)/kms_enclave.sigstruct: $(BUILD)/kms_enclave.so $(ENCLAVE_CONFIG) $(KMS_SIGNER_KEY)
	$(PYTHON) -m kms enclave sign --key $(KMS_SIGNER_KEY) --config $(ENCLAVE_CONFIG) \
	  --image $(BUILD)/kms_enclave.so --out $@

sign: $(BUILD)/kms_enclave.sigstruct

# ---- Python side: protobuf modules and the cffi bridge ----------------------------------
PY_PB := $(patsubst proto/%.proto,%_pb2.py,$(PROTOS))
$(PY_PB): %_pb2.py: proto/%.proto
	$(PYTHON) -m grpc_tools.protoc -I proto --python_out=. --pyi_out=. $<

python: $(PY_PB) $(BUILD)/.bridge-stamp
$(BUILD)/.bridge-stamp: $(BRIDGE_SRCS) enclave/include/kms/bridge.h enclave/include/kms/edge.h kms/enclave/_build.py
	$(PYTHON) kms/enclave/_build.py
	@touch $@

# ---- C tests under ASan + UBSan ----------------------------------------------------------
TEST_BINS := $(patsubst enclave/tests/%.c,$(BUILD)/test/%,$(sort $(wildcard enclave/tests/test_*.c)))

$(BUILD)/test/wycheproof_runner: enclave/tests/wycheproof_runner.c $(CRYPTO_SRCS) $(PB_H)
	@mkdir -p $(dir $@)
	$(CC) $(SAN_CFLAGS) -o $@ $< $(CRYPTO_SRCS) -lcrypto

$(BUILD)/test/test_crypto: enclave/tests/test_crypto.c $(CRYPTO_SRCS) $(PB_H)
	@mkdir -p $(dir $@)
	$(CC) $(SAN_CFLAGS) -o $@ $< $(CRYPTO_SRCS) -lcrypto

$(BUILD)/test/%: enclave/tests/%.c $(filter-out enclave/src/ecall.c,$(ENCLAVE_SRCS)) $(SIMCPU_SRCS) $(PB_C) $(PB_H)
	@mkdir -p $(dir $@)
	$(CC) $(SAN_CFLAGS) -DKMS_TEST_BUILD -o $@ $< $(filter %.c,$(filter-out $<,$^)) $(NANOPB_LIB) -lcrypto -lpthread

ctest: $(TEST_BINS) $(BUILD)/test/wycheproof_runner
	@for t in $(TEST_BINS); do echo "== $$t"; $$t || exit 1; done

# ---- libFuzzer on the call ECALL ---------------------------------------------------------
FUZZ_SECONDS ?= 30
$(BUILD)/fuzz/fuzz_ecall: enclave/fuzz/fuzz_ecall.c $(ENCLAVE_SRCS) $(SIMCPU_SRCS) $(PB_C) $(PB_H)
	@mkdir -p $(dir $@)
	$(CLANG) $(CSTD) -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	  $(INCLUDES) -DKMS_FUZZ_BUILD -o $@ $(filter %.c,$^) $(NANOPB_LIB) -lcrypto -lpthread

fuzz-smoke: $(BUILD)/fuzz/fuzz_ecall
	@mkdir -p $(BUILD)/fuzz/corpus
	$(BUILD)/fuzz/fuzz_ecall -max_total_time=$(FUZZ_SECONDS) -max_len=66000 -timeout=10 \
	  -rss_limit_mb=4096 $(BUILD)/fuzz/corpus enclave/fuzz/seeds

clean:
	rm -rf $(BUILD) kms/enclave/_native*.so kms/enclave/_native.c kms/enclave/_native.o
	find kms/proto -name '*_pb2.py*' -delete 2>/dev/null || true
distclean: clean
	rm -rf .venv .local
