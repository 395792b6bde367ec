/*
 * verify.c: `hearth db verify`: a read-only deep check of a data directory.
 * Blocks are opened the way the store opens them plus a decompression of
 * every chunk with a bounds check of every row (st_block_open deep mode);
 * WAL segments after the checkpoint are read and each record decoded and
 * validated. Nothing is repaired here: the store itself truncates a torn
 * WAL tail and skips damaged blocks when it opens.
 */
#include "core/common.h"

#include <dirent.h>
#include <sys/stat.h>

#include "core/log.h"
#include "core/mem.h"
#include "store/store_int.h"

typedef struct vctx {
    buf *report;
    uint64_t records, bad;
    uint64_t seq;
} vctx;

/* One type-1 record (alone or inside a batch). */
static int check_one(void *arg, const uint8_t *p, size_t n)
{
    vctx *v = arg;
    st_rec rec;
    herr e;
    herr_clear(&e);
    int rc = st_rec_decode(&rec, p, n, &e);
    if (rc) {
        buf_printf(v->report, "DAMAGED WAL segment %016" PRIx64 ": record %" PRIu64 " does not decode: %s\n", v->seq,
                   v->records, herr_msg(&e, rc));
        v->bad++;
    }
    prof_release(&rec.prof);
    v->records++;
    return 0;
}

static int check_record(void *arg, uint64_t seq, const uint8_t *p, size_t n)
{
    vctx *v = arg;
    v->seq = seq;
    herr e;
    herr_clear(&e);
    int rc = st_rec_each(p, n, check_one, v, &e);
    if (rc) {
        buf_printf(v->report, "DAMAGED WAL segment %016" PRIx64 ": batch record %" PRIu64 ": %s\n", seq, v->records,
                   herr_msg(&e, rc));
        v->bad++;
        v->records++;
    }
    return 0;
}

int store_verify(const char *dir, buf *report, uint64_t *n_problems, herr *e)
{
    *n_problems = 0;
    char tdir[PATH_MAX], path[PATH_MAX + 512], bpath[PATH_MAX + 1024];
    snprintf(tdir, sizeof(tdir), "%s/tenants", dir);
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return herr_set(e, HE_NOTFOUND, "\"%s\" is not a directory", dir);
    DIR *td = opendir(tdir);
    uint64_t blocks = 0;
    while (td) {
        struct dirent *te = readdir(td);
        if (!te)
            break;
        if (te->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "%s/%s", tdir, te->d_name);
        DIR *bd = opendir(path);
        if (!bd)
            continue;
        struct dirent *be;
        while ((be = readdir(bd))) {
            if (!strcmp(be->d_name, ".") || !strcmp(be->d_name, ".."))
                continue;
            snprintf(bpath, sizeof(bpath), "%s/%s", path, be->d_name);
            if (!strncmp(be->d_name, ".tmp-", 5) || !strncmp(be->d_name, ".del-", 5)) {
                buf_printf(report, "note %s: %s; removed at the next open\n", bpath,
                           be->d_name[1] == 't' ? "unfinished block from an interrupted flush" : "block whose deletion was interrupted");
                continue;
            }
            st_block b;
            herr be_err;
            herr_clear(&be_err);
            int rc = st_block_open(&b, bpath, 1, &be_err);
            blocks++;
            if (rc) {
                buf_printf(report, "DAMAGED %s: %s\n", bpath, herr_msg(&be_err, rc));
                (*n_problems)++;
            } else {
                buf_printf(report, "ok %s: %u series, %" PRIu64 " profiles, %" PRIu64 " samples\n", bpath, b.n_series,
                           b.n_profiles, b.n_samples);
            }
            st_block_close(&b);
        }
        closedir(bd);
    }
    if (td)
        closedir(td);
    /* WAL after the checkpoint. */
    char wdir[PATH_MAX];
    snprintf(wdir, sizeof(wdir), "%s/wal", dir);
    uint64_t ckp = 0;
    snprintf(path, sizeof(path), "%s/checkpoint", wdir);
    buf cb;
    buf_init(&cb, 4096);
    if (buf_read_file(&cb, path) == 0) {
        if (cb.len == 20 && st_crc32(cb.data, 16) == st_get32((const uint8_t *)cb.data + 16)) {
            ckp = st_get64((const uint8_t *)cb.data + 8);
        } else {
            buf_printf(report, "DAMAGED %s: checkpoint checksum mismatch\n", path);
            (*n_problems)++;
        }
    }
    buf_release(&cb);
    vctx v = {report, 0, 0, 0};
    uint64_t last, bytes;
    herr we;
    herr_clear(&we);
    int rc = st_wal_replay(wdir, ckp, 1, check_record, &v, &last, &bytes, &we);
    if (rc) {
        buf_printf(report, "DAMAGED %s: %s\n", wdir, herr_msg(&we, rc));
        (*n_problems)++;
    }
    *n_problems += v.bad;
    buf_printf(report, "%" PRIu64 " blocks, %" PRIu64 " WAL records (%" PRIu64 " bytes), %" PRIu64 " problems\n", blocks,
               v.records, bytes, *n_problems);
    return 0;
}
