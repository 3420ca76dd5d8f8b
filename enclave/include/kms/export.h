/* export.h - marks the few functions a shared object exports (everything else is built with
 * -fvisibility=hidden, and a version script double-checks the list). */
#ifndef KMS_EXPORT_H
#define KMS_EXPORT_H
#define KMS_EXPORT __attribute__((visibility("default")))
#endif
