/*
 * wire.c - the agent's framing (local.proto): a 4-byte big-endian length, then that many bytes
 * of one encoded message. Frames above P11_MAX_FRAME are refused on both sides.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <pb_decode.h>
#include <pb_encode.h>

#include "p11.h"

static CK_RV write_all(int fd, const uint8_t *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return CKR_DEVICE_ERROR;
        buf += n;
        len -= (size_t)n;
    }
    return CKR_OK;
}

static CK_RV read_all(int fd, uint8_t *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = read(fd, buf, len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return CKR_DEVICE_ERROR;
        buf += n;
        len -= (size_t)n;
    }
    return CKR_OK;
}

CK_RV p11_frame_write(int fd, const pb_msgdesc_t *type, const void *msg)
{
    size_t size = 0;
    if (!pb_get_encoded_size(&size, type, msg) || size > P11_MAX_FRAME) return CKR_GENERAL_ERROR;
    uint8_t *buf = malloc(size + 4);
    if (buf == NULL) return CKR_HOST_MEMORY;
    buf[0] = (uint8_t)(size >> 24);
    buf[1] = (uint8_t)(size >> 16);
    buf[2] = (uint8_t)(size >> 8);
    buf[3] = (uint8_t)size;
    pb_ostream_t out = pb_ostream_from_buffer(buf + 4, size);
    CK_RV rv = pb_encode(&out, type, msg) ? write_all(fd, buf, size + 4) : CKR_GENERAL_ERROR;
    memset(buf, 0, size + 4); /* requests carry plaintext and PINs */
    free(buf);
    return rv;
}

CK_RV p11_frame_read(int fd, const pb_msgdesc_t *type, void *msg)
{
    uint8_t hdr[4];
    CK_RV rv = read_all(fd, hdr, sizeof hdr);
    if (rv != CKR_OK) return rv;
    size_t size = (size_t)hdr[0] << 24 | (size_t)hdr[1] << 16 | (size_t)hdr[2] << 8 | hdr[3];
    if (size > P11_MAX_FRAME) return CKR_DEVICE_ERROR;
    uint8_t *buf = malloc(size ? size : 1);
    if (buf == NULL) return CKR_HOST_MEMORY;
    rv = read_all(fd, buf, size);
    if (rv == CKR_OK) {
        pb_istream_t in = pb_istream_from_buffer(buf, size);
        if (!pb_decode(&in, type, msg)) rv = CKR_DEVICE_ERROR;
    }
    memset(buf, 0, size);
    free(buf);
    return rv;
}
