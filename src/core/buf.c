/*
 * buf.c: see buf.h.
 */
#include "core/common.h"
#include "core/buf.h"
#include "core/err.h"

#include <fcntl.h>
#include <libgen.h>
#include <unistd.h>

static size_t limit(const buf *b) { return b->max ? b->max : SIZE_MAX / 2; }

void buf_init(buf *b, size_t max) { b->data = NULL; b->len = b->cap = 0; b->max = max; }
void buf_release(buf *b) { free(b->data); b->data = NULL; b->len = b->cap = 0; }
void buf_reset(buf *b) { b->len = 0; if (b->data) b->data[0] = 0; }

char *buf_detach(buf *b, size_t *len)
{
    char *d = b->data;
    if (!d) { d = malloc(1); if (d) d[0] = 0; }
    if (len) *len = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return d;
}

int buf_reserve(buf *b, size_t extra)
{
    size_t need, ncap;
    char *p;
    if (extra > limit(b) - b->len) return HE_TOOBIG;
    need = b->len + extra + 1;
    if (need <= b->cap) return 0;
    ncap = b->cap ? b->cap : 64;
    while (ncap < need) ncap = ncap > SIZE_MAX / 4 ? need : ncap * 2;
    p = realloc(b->data, ncap);
    if (!p) return -ENOMEM;
    b->data = p;
    b->cap = ncap;
    return 0;
}

int buf_append(buf *b, const void *p, size_t n)
{
    int rc = buf_reserve(b, n);
    if (rc) return rc;
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = 0;
    return 0;
}

int buf_puts(buf *b, const char *s) { return buf_append(b, s, strlen(s)); }

int buf_putc(buf *b, char c)
{
    if (b->len + 1 < b->cap && b->len < limit(b)) {
        b->data[b->len++] = c;
        b->data[b->len] = 0;
        return 0;
    }
    return buf_append(b, &c, 1);
}

int buf_vprintf(buf *b, const char *fmt, va_list ap)
{
    va_list ap2;
    int n, rc;
    va_copy(ap2, ap);
    n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0) return -EINVAL;
    rc = buf_reserve(b, (size_t)n);
    if (rc) return rc;
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return 0;
}

int buf_printf(buf *b, const char *fmt, ...)
{
    va_list ap;
    int rc;
    va_start(ap, fmt);
    rc = buf_vprintf(b, fmt, ap);
    va_end(ap);
    return rc;
}

int buf_put_u64(buf *b, uint64_t v)
{
    char tmp[24];
    int i = (int)sizeof tmp;
    do { tmp[--i] = (char)('0' + v % 10); v /= 10; } while (v);
    return buf_append(b, tmp + i, sizeof tmp - (size_t)i);
}

int buf_put_i64(buf *b, int64_t v)
{
    if (v < 0) {
        int rc = buf_putc(b, '-');
        if (rc) return rc;
        return buf_put_u64(b, (uint64_t)0 - (uint64_t)v);
    }
    return buf_put_u64(b, (uint64_t)v);
}

int buf_read_file(buf *b, const char *path)
{
    int fd = strcmp(path, "-") ? open(path, O_RDONLY | O_CLOEXEC) : STDIN_FILENO;
    int rc = 0;
    if (fd < 0) return -errno;
    for (;;) {
        size_t room = MIN((size_t)1 << 20, limit(b) - b->len);
        ssize_t n;
        if (room == 0) {
            /* At the cap: only an empty rest of the file is acceptable. */
            char probe;
            while ((n = read(fd, &probe, 1)) < 0 && errno == EINTR) { }
            rc = n == 0 ? 0 : n > 0 ? HE_TOOBIG : -errno;
            break;
        }
        if ((rc = buf_reserve(b, room)) != 0) break;
        n = read(fd, b->data + b->len, room);
        if (n < 0) { if (errno == EINTR) continue; rc = -errno; break; }
        if (n == 0) break;
        b->len += (size_t)n;
        b->data[b->len] = 0;
    }
    if (fd != STDIN_FILENO) close(fd);
    return rc;
}

int buf_write_file(const buf *b, const char *path)
{
    char tmp[4096], dir[4096];
    size_t off = 0;
    int fd, rc = 0;
    if (!strcmp(path, "-")) {
        while (off < b->len) {
            ssize_t n = write(STDOUT_FILENO, b->data + off, b->len - off);
            if (n < 0) { if (errno == EINTR) continue; return -errno; }
            off += (size_t)n;
        }
        return 0;
    }
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid()) >= (int)sizeof tmp) return -ENAMETOOLONG;
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return -errno;
    while (off < b->len) {
        ssize_t n = write(fd, b->data + off, b->len - off);
        if (n < 0) { if (errno == EINTR) continue; rc = -errno; break; }
        off += (size_t)n;
    }
    if (!rc && fsync(fd) != 0) rc = -errno;
    close(fd);
    if (!rc && rename(tmp, path) != 0) rc = -errno;
    if (rc) { unlink(tmp); return rc; }
    snprintf(dir, sizeof dir, "%s", path);
    fd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) { fsync(fd); close(fd); }
    return 0;
}
