/*
 * state_reader.h - the state_log_get OCALL served in C from a SQLite store's file (state_reader.c), for
 * the bridge (bridge.c). Thread-safe: get may run on any number of threads at once; open and close may
 * not run concurrently with a get. Sizes in bytes.
 */
#ifndef KMS_BRIDGE_STATE_READER_H
#define KMS_BRIDGE_STATE_READER_H

#include <stddef.h>
#include <stdint.h>

typedef struct kms_state_reader kms_state_reader;

/* A reader of the state_log table in the SQLite database at path, or NULL when it cannot be opened
 * and read (the caller then keeps the OCALL in Python). Owned by the caller until kms_state_reader_close. */
kms_state_reader *kms_state_reader_open(const char *path);
void kms_state_reader_close(kms_state_reader *reader);

/* Entry seq (0: the last one) into entry (cap bytes), *len 0 when there is none: 0, or -1 when the
 * database fails or the entry exceeds cap (the OCALL's own convention). */
int kms_state_reader_get(kms_state_reader *reader, uint64_t seq, uint8_t *entry, size_t cap, size_t *len);

/* The address of the SQLite library's sqlite3_libversion this bridge calls: Python compares it with
 * its own sqlite3 module's before using the reader (two SQLite copies in one process would break each
 * other's POSIX locks on the same file). */
const void *kms_state_reader_sqlite_entry(void);

#endif /* KMS_BRIDGE_STATE_READER_H */
