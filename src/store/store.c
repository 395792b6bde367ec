/*
 * store.c: the store object: open (blocks, WAL replay), ingest, flush,
 * compaction, retention, the background thread and stats.
 *
 * Layout of a data directory (docs/format.md):
 *   DIR/LOCK                  flock'ed by the one process that writes
 *   DIR/wal/<seq>.wal         WAL segments; DIR/wal/checkpoint = last
 *                             segment whose records are all in blocks
 *   DIR/tenants/<tenant>/<block id>/{index,symbols,samples}
 *
 * Ingest: under the write lock, append the record to the WAL and insert it
 * into the head of its (tenant, partition); then, outside the lock, wait
 * for the group commit. A batch (store_ingest_batch) is one record, and no
 * head sees any of it unless the record was written whole. Flush: under the write lock rotate the WAL (segment
 * S closes) and move every head to `flushing`; write the blocks with no
 * lock held (queries still read the flushing heads); swap the blocks in;
 * write the checkpoint S; delete segments <= S. Replay after a crash skips
 * the records of segment x for (tenant, partition) when a level-0 block of
 * that partition has flush_seq >= x (it was written before the crash but
 * the checkpoint was not). Compaction only merges blocks at or below the
 * checkpoint, and a compacted block lists its sources, so sources left
 * behind by a crash are deleted at the next open.
 */
#include "core/common.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/mem.h"
#include "core/units.h"
#include "store/store_int.h"

void store_opts_default(store_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->fsync = STORE_FSYNC_ALWAYS;
    o->fsync_batch_ns = 100 * 1000000LL;
    o->retention_ns = 30LL * 24 * 3600 * 1000000000LL;
    o->block_ns = 3600LL * 1000000000LL;
    o->compact_ns = 24LL * 3600 * 1000000000LL;
    o->flush_interval_ns = 600LL * 1000000000LL;
    o->compact_interval_ns = 300LL * 1000000000LL;
    o->head_max_bytes = (size_t)256 << 20;
    o->max_series_per_tenant = 100000;
    o->max_profile_samples = 1000000;
}

int store_fsync_parse(const char *s)
{
    if (!strcmp(s, "always"))
        return STORE_FSYNC_ALWAYS;
    if (!strcmp(s, "batch"))
        return STORE_FSYNC_BATCH;
    if (!strcmp(s, "never"))
        return STORE_FSYNC_NEVER;
    return -1;
}

int store_tenant_valid(const char *t)
{
    size_t n = strlen(t);
    if (n == 0 || n > 150 || !strcmp(t, ".") || !strcmp(t, ".."))
        return HE_USAGE;
    for (const char *c = t; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || strchr("!_.*'()-", *c)))
            return HE_USAGE;
    return 0;
}

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0)))
        q--;
    return q;
}

static int64_t window_of(const store *s, int64_t ts)
{
    return floor_div(ts, s->o.block_ns) * s->o.block_ns;
}

/* ---- checkpoint ---- */

static const char CKP_MAGIC[8] = {'H', 'R', 'T', 'H', 'C', 'K', 'P', '1'};

static uint64_t read_checkpoint(const char *wal_dir)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/checkpoint", wal_dir);
    buf b;
    buf_init(&b, 4096);
    uint64_t seq = 0;
    if (buf_read_file(&b, path) == 0) {
        const uint8_t *p = (const uint8_t *)b.data;
        if (b.len == 20 && !memcmp(p, CKP_MAGIC, 8) && st_crc32(p, 16) == st_get32(p + 16))
            seq = st_get64(p + 8);
        else
            log_warn("WAL checkpoint \"%s\" is damaged; replaying every segment", path);
    }
    buf_release(&b);
    return seq;
}

static int write_checkpoint(const char *wal_dir, uint64_t seq)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/checkpoint", wal_dir);
    uint8_t d[20];
    memcpy(d, CKP_MAGIC, 8);
    st_put64(d + 8, seq);
    st_put32(d + 16, st_crc32(d, 16));
    buf b;
    buf_init(&b, 0);
    buf_append(&b, d, sizeof(d));
    int rc = buf_write_file(&b, path);
    buf_release(&b);
    return rc;
}

/* ---- lists ---- */

static void add_damaged(store *s, const char *path, const char *why)
{
    if (HGROW(s->damaged, s->cap_damaged, s->n_damaged + 1))
        return;
    size_t n = strlen(path) + strlen(why) + 4;
    char *m = xmalloc(n);
    snprintf(m, n, "%s: %s", path, why);
    s->damaged[s->n_damaged++] = m;
}

static void add_block(store *s, st_block *b)
{
    XGROW(s->blocks, s->cap_blocks, s->n_blocks + 1);
    s->blocks[s->n_blocks++] = b;
}

static st_head *get_head(store *s, const char *tenant, int64_t window, herr *e)
{
    for (size_t i = 0; i < s->n_heads; i++)
        if (s->heads[i]->window == window && !strcmp(s->heads[i]->tenant, tenant))
            return s->heads[i];
    if (HGROW(s->heads, s->cap_heads, s->n_heads + 1))
        return NULL;
    st_head *h = xmalloc(sizeof(*h));
    if (st_head_init(h, tenant, window)) {
        st_head_release(h);
        free(h);
        return NULL;
    }
    s->heads[s->n_heads++] = h;
    return h;
}

/* ---- loading blocks ---- */

static int load_blocks(store *s, herr *e)
{
    DIR *td = opendir(s->tenants_dir);
    if (!td)
        return errno == ENOENT ? 0 : herr_set(e, -errno, "cannot read \"%s\": %s", s->tenants_dir, strerror(errno));
    struct dirent *te;
    char tpath[PATH_MAX], bpath[PATH_MAX + 512];
    while ((te = readdir(td))) {
        if (te->d_name[0] == '.' || store_tenant_valid(te->d_name))
            continue;
        snprintf(tpath, sizeof(tpath), "%s/%s", s->tenants_dir, te->d_name);
        DIR *bd = opendir(tpath);
        if (!bd)
            continue;
        struct dirent *be;
        while ((be = readdir(bd))) {
            if (!strcmp(be->d_name, ".") || !strcmp(be->d_name, ".."))
                continue;
            snprintf(bpath, sizeof(bpath), "%s/%s", tpath, be->d_name);
            if (!strncmp(be->d_name, ".tmp-", 5) || !strncmp(be->d_name, ".del-", 5)) {
                if (!s->o.read_only) {
                    log_info("removing %s block \"%s\"", be->d_name[1] == 't' ? "unfinished" : "deleted", bpath);
                    st_rmtree(bpath);
                }
                continue;
            }
            if (be->d_name[0] == '.')
                continue;
            st_block *b = xmalloc(sizeof(*b));
            herr be_err;
            herr_clear(&be_err);
            int rc = st_block_open(b, bpath, 0, &be_err);
            if (rc) {
                log_error("block \"%s\" is damaged and will be skipped: %s", bpath, herr_msg(&be_err, rc));
                add_damaged(s, bpath, herr_msg(&be_err, rc));
                st_block_close(b);
                free(b);
                continue;
            }
            add_block(s, b);
        }
        closedir(bd);
    }
    closedir(td);
    /* Blocks replaced by a compacted block that made it to disk are leftovers of a crash. */
    char *gone = xcalloc(s->n_blocks + 1, 1);
    for (size_t i = 0; i < s->n_blocks; i++) {
        st_block *c = s->blocks[i];
        for (uint32_t k = 0; k < c->n_sources; k++)
            for (size_t j = 0; j < s->n_blocks; j++)
                if (j != i && !strcmp(s->blocks[j]->tenant, c->tenant) && !strcmp(s->blocks[j]->id, c->sources[k]) && !gone[i]) {
                    log_info("block \"%s\" was compacted into \"%s\"; removing it", s->blocks[j]->dir, c->id);
                    gone[j] = 1;
                }
    }
    size_t kept = 0;
    for (size_t i = 0; i < s->n_blocks; i++) {
        if (!gone[i]) {
            s->blocks[kept++] = s->blocks[i];
            continue;
        }
        if (!s->o.read_only)
            st_block_remove(s->blocks[i]->dir);
        st_block_close(s->blocks[i]);
        free(s->blocks[i]);
    }
    s->n_blocks = kept;
    free(gone);
    return 0;
}

typedef struct replay_ctx {
    store *s;
    herr *e;
    uint64_t n;
    uint64_t seq;  /* segment of the record being replayed */
} replay_ctx;

/* Replays one type-1 record. */
static int replay_rec(void *arg, const uint8_t *p, size_t n)
{
    replay_ctx *c = arg;
    store *s = c->s;
    uint64_t seq = c->seq;
    st_rec rec;
    herr e;
    herr_clear(&e);
    int rc = st_rec_decode(&rec, p, n, &e);
    if (rc) {
        log_warn("WAL segment %" PRIu64 ": skipping an undecodable record: %s", seq, herr_msg(&e, rc));
        prof_release(&rec.prof);
        return 0;
    }
    int64_t w = window_of(s, rec.time_ns);
    for (size_t i = 0; i < s->n_blocks; i++) {
        st_block *b = s->blocks[i];
        if (b->n_sources == 0 && b->window == w && b->flush_seq >= seq && b->flush_seq > s->checkpoint &&
            !strcmp(b->tenant, rec.tenant)) {
            prof_release(&rec.prof);
            return 0; /* flushed before the crash */
        }
    }
    st_head *h = get_head(s, rec.tenant, w, &e);
    if (!h) {
        prof_release(&rec.prof);
        return -ENOMEM;
    }
    rc = st_head_insert(h, &rec, s->o.max_series_per_tenant, &e);
    if (rc)
        log_warn("WAL segment %" PRIu64 ": record for tenant \"%s\" not replayed: %s", seq, rec.tenant, herr_msg(&e, rc));
    prof_release(&rec.prof);
    c->n++;
    return 0;
}

static int replay_one(void *arg, uint64_t seq, const uint8_t *p, size_t n)
{
    replay_ctx *c = arg;
    c->seq = seq;
    herr e;
    herr_clear(&e);
    int rc = st_rec_each(p, n, replay_rec, c, &e);
    if (rc == HE_FORMAT) {
        log_warn("WAL segment %" PRIu64 ": skipping an undecodable batch record: %s", seq, herr_msg(&e, rc));
        return 0;
    }
    return rc;
}

static void *bg_main(void *arg);

int store_open(store **out, const char *dir, const store_opts *o, herr *e)
{
    store *s = xcalloc(1, sizeof(*s));
    if (o)
        s->o = *o;
    else
        store_opts_default(&s->o);
    if (s->o.block_ns <= 0)
        s->o.block_ns = 3600LL * 1000000000LL;
    if (s->o.compact_ns < s->o.block_ns)
        s->o.compact_ns = s->o.block_ns;
    s->lock_fd = -1;
    s->dir = xstrdup(dir);
    size_t n = strlen(dir) + 16;
    s->wal_dir = xmalloc(n);
    s->tenants_dir = xmalloc(n);
    snprintf(s->wal_dir, n, "%s/wal", dir);
    snprintf(s->tenants_dir, n, "%s/tenants", dir);
    pthread_rwlockattr_t ra;
    pthread_rwlockattr_init(&ra);
    pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&s->lock, &ra);
    pthread_rwlockattr_destroy(&ra);
    pthread_mutex_init(&s->maint, NULL);
    pthread_mutex_init(&s->bg_mu, NULL);
    pthread_cond_init(&s->bg_cv, NULL);
    int rc;
    if (!s->o.read_only) {
        if ((rc = st_mkdirs(s->wal_dir)) || (rc = st_mkdirs(s->tenants_dir))) {
            herr_set(e, rc, "cannot create data directory \"%s\": %s", dir, strerror(-rc));
            store_close(s);
            return rc;
        }
        char lp[PATH_MAX];
        snprintf(lp, sizeof(lp), "%s/LOCK", dir);
        s->lock_fd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (s->lock_fd < 0 || flock(s->lock_fd, LOCK_EX | LOCK_NB) != 0) {
            rc = herr_set(e, -EBUSY, "data directory \"%s\" is in use by another hearth process (LOCK is held)", dir);
            store_close(s);
            return rc;
        }
    } else {
        struct stat st;
        if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
            rc = herr_set(e, HE_NOTFOUND, "\"%s\" is not a hearth data directory", dir);
            store_close(s);
            return rc;
        }
    }
    if ((rc = load_blocks(s, e))) {
        store_close(s);
        return rc;
    }
    s->checkpoint = read_checkpoint(s->wal_dir);
    replay_ctx rc_ctx = {s, e, 0, 0};
    uint64_t last = 0;
    rc = st_wal_replay(s->wal_dir, s->checkpoint, s->o.read_only, replay_one, &rc_ctx, &last, &s->wal_replayed_bytes, e);
    if (rc) {
        store_close(s);
        return rc;
    }
    if (rc_ctx.n)
        log_info("replayed %" PRIu64 " WAL records into the head", rc_ctx.n);
    if (!s->o.read_only) {
        if ((rc = st_wal_open(&s->wal, s->wal_dir, last + 1, s->o.fsync, e))) {
            store_close(s);
            return rc;
        }
        s->wal_open = 1;
        s->wal.fail_after = s->o.wal_fail_after_bytes;
        if (s->o.background) {
            if (pthread_create(&s->bg, NULL, bg_main, s) == 0)
                s->bg_running = 1;
            else
                log_warn("cannot start the store's background thread; flush and compaction run only on demand");
        }
    }
    *out = s;
    return 0;
}

void store_close(store *s)
{
    if (!s)
        return;
    if (s->bg_running) {
        pthread_mutex_lock(&s->bg_mu);
        s->stop = 1;
        pthread_cond_broadcast(&s->bg_cv);
        pthread_mutex_unlock(&s->bg_mu);
        pthread_join(s->bg, NULL);
    }
    if (s->wal_open)
        st_wal_close(&s->wal);
    for (size_t i = 0; i < s->n_heads; i++) {
        st_head_release(s->heads[i]);
        free(s->heads[i]);
    }
    for (size_t i = 0; i < s->n_flushing; i++) {
        st_head_release(s->flushing[i]);
        free(s->flushing[i]);
    }
    for (size_t i = 0; i < s->n_blocks; i++) {
        st_block_close(s->blocks[i]);
        free(s->blocks[i]);
    }
    for (size_t i = 0; i < s->n_damaged; i++)
        free(s->damaged[i]);
    free(s->damaged);
    free(s->heads);
    free(s->flushing);
    free(s->blocks);
    if (s->lock_fd >= 0)
        close(s->lock_fd);
    pthread_rwlock_destroy(&s->lock);
    pthread_mutex_destroy(&s->maint);
    pthread_mutex_destroy(&s->bg_mu);
    pthread_cond_destroy(&s->bg_cv);
    free(s->dir);
    free(s->wal_dir);
    free(s->tenants_dir);
    free(s);
}

static size_t heads_bytes(const store *s)
{
    size_t n = 0;
    for (size_t i = 0; i < s->n_heads; i++)
        n += st_head_bytes(s->heads[i]);
    return n;
}

/* The checks store_ingest makes on one profile before anything is written. */
static int check_item(const store *s, const store_item *it, herr *e)
{
    int rc;
    if ((rc = st_check_labels(it->labels, it->n_labels, e)))
        return rc;
    if (it->p->n_samples > s->o.max_profile_samples)
        return herr_set(e, HE_TOOBIG, "profile has %zu samples, more than the limit of %zu", it->p->n_samples, s->o.max_profile_samples);
    /* Decoders check references already; this keeps a buggy caller from crashing the store. */
    if ((rc = prof_validate(it->p, e)))
        return rc;
    for (size_t i = 0; i < it->n_labels; i++)
        if (!strcmp(it->labels[i].name, "service_name"))
            return 0;
    return herr_set(e, HE_USAGE, "the series labels lack service_name");
}

int store_ingest_batch(store *s, const char *tenant, const store_item *items, size_t n, herr *e)
{
    int rc;
    if (s->o.read_only)
        return herr_set(e, HE_USAGE, "the store is open read-only");
    if (!tenant || store_tenant_valid(tenant))
        return herr_set(e, HE_USAGE, "invalid tenant ID \"%.64s\" (1-150 characters of A-Z a-z 0-9 !_.*'()-)", tenant ? tenant : "");
    if (n == 0)
        return 0;
    if (n > STORE_MAX_BATCH)
        return herr_set(e, HE_TOOBIG, "a batch of %zu profiles, more than %d", n, STORE_MAX_BATCH);
    uint64_t n_samples = 0;
    for (size_t i = 0; i < n; i++) {
        herr ie;
        herr_clear(&ie);
        if ((rc = check_item(s, &items[i], &ie)))
            return n == 1 ? herr_set(e, rc, "%s", herr_msg(&ie, rc)) : herr_set(e, rc, "profile %zu: %s", i, herr_msg(&ie, rc));
        n_samples += items[i].p->n_samples;
    }
    /* One record: type 1 alone, or type 2 = count + each type-1 record behind its u32 length. */
    buf rec;
    buf_init(&rec, (size_t)1 << 30);
    if (n == 1) {
        rc = st_rec_encode(&rec, tenant, items[0].labels, items[0].n_labels, items[0].p, items[0].time_ns, items[0].duration_ns);
    } else if (!(rc = st_putv(&rec, 2)) && !(rc = st_putv(&rec, n))) {
        for (size_t i = 0; i < n && !rc; i++) {
            size_t at = rec.len;
            static const uint8_t zero[4];
            if ((rc = buf_append(&rec, zero, 4)))
                break;
            rc = st_rec_encode(&rec, tenant, items[i].labels, items[i].n_labels, items[i].p, items[i].time_ns, items[i].duration_ns);
            if (!rc)
                st_put32((uint8_t *)rec.data + at, (uint32_t)(rec.len - at - 4));
        }
    }
    if (rc) {
        buf_release(&rec);
        return herr_set(e, rc, "%s too large for one WAL record", n == 1 ? "profile" : "batch of profiles");
    }
    uint64_t pos = 0;
    size_t hb = 0;
    pthread_rwlock_wrlock(&s->lock);
    rc = st_wal_append(&s->wal, rec.data, rec.len, &pos);
    if (rc) {
        pthread_rwlock_unlock(&s->lock);
        buf_release(&rec);
        return herr_set(e, rc, "cannot write the WAL: %s; nothing of this %s was stored", hearth_strerror(rc),
                        n == 1 ? "profile" : "batch");
    }
    /*
     * The heads read the callers' profiles directly (read only), exactly the
     * data the record holds. An item the head refuses (the series limit) does
     * not stop the others: replay of the record does the same, so what a
     * restart shows is what was acknowledged here. The first error is returned.
     */
    for (size_t i = 0; i < n; i++) {
        st_rec r;
        memset(&r, 0, sizeof(r));
        r.tenant = tenant;
        r.n_labels = items[i].n_labels;
        memcpy(r.labels, items[i].labels, items[i].n_labels * sizeof(*items[i].labels));
        r.time_ns = items[i].time_ns;
        r.duration_ns = items[i].duration_ns;
        r.prof = *items[i].p;
        st_head *h = get_head(s, tenant, window_of(s, items[i].time_ns), e);
        int irc = h ? st_head_insert(h, &r, s->o.max_series_per_tenant, e) : -ENOMEM;
        if (irc && !rc)
            rc = irc;
    }
    hb = heads_bytes(s);
    pthread_rwlock_unlock(&s->lock);
    buf_release(&rec);
    if (rc)
        return rc;
    if ((rc = st_wal_wait(&s->wal, pos)))
        return herr_set(e, rc, "WAL fsync failed; the %s is not durable", n == 1 ? "profile" : "batch");
    __atomic_add_fetch(&s->ingested_profiles, n, __ATOMIC_RELAXED);
    __atomic_add_fetch(&s->ingested_samples, n_samples, __ATOMIC_RELAXED);
    if (hb > s->o.head_max_bytes) {
        if (s->bg_running) {
            pthread_mutex_lock(&s->bg_mu);
            pthread_cond_broadcast(&s->bg_cv);
            pthread_mutex_unlock(&s->bg_mu);
        } else {
            herr fe;
            herr_clear(&fe);
            int frc = store_flush(s, &fe);
            if (frc)
                log_error("flush failed: %s", herr_msg(&fe, frc));
        }
    }
    return 0;
}

int store_ingest(store *s, const char *tenant, const store_label *labels, size_t n,
                 const profile *p, int64_t time_ns, int64_t duration_ns, herr *e)
{
    store_item it = {labels, n, p, time_ns, duration_ns};
    return store_ingest_batch(s, tenant, &it, 1, e);
}

int store_flush(store *s, herr *e)
{
    if (s->o.read_only)
        return herr_set(e, HE_USAGE, "the store is open read-only");
    pthread_mutex_lock(&s->maint);
    pthread_rwlock_wrlock(&s->lock);
    if (s->n_heads == 0 && s->n_flushing == 0) {
        pthread_rwlock_unlock(&s->lock);
        pthread_mutex_unlock(&s->maint);
        return 0;
    }
    uint64_t seq = s->wal.seq;
    int rc = st_wal_rotate(&s->wal, e);
    if (rc) {
        pthread_rwlock_unlock(&s->lock);
        pthread_mutex_unlock(&s->maint);
        return rc;
    }
    for (size_t i = 0; i < s->n_heads; i++) {
        XGROW(s->flushing, s->cap_flushing, s->n_flushing + 1);
        s->flushing[s->n_flushing++] = s->heads[i];
    }
    s->n_heads = 0;
    size_t nf = s->n_flushing;
    st_head **fl = xmallocarray(nf + 1, sizeof(*fl));
    memcpy(fl, s->flushing, nf * sizeof(*fl));
    pthread_rwlock_unlock(&s->lock);

    st_block **nb = xcalloc(nf + 1, sizeof(*nb));
    int failed = 0;
    for (size_t i = 0; i < nf; i++) {
        if (fl[i]->n_profiles == 0)
            continue;
        char tdir[PATH_MAX];
        snprintf(tdir, sizeof(tdir), "%s/%s", s->tenants_dir, fl[i]->tenant);
        char *bdir = NULL;
        if ((rc = st_mkdirs(tdir)) || (rc = st_block_write_head(fl[i], tdir, seq, &bdir, e))) {
            herr_set(e, rc, "cannot create tenant directory \"%s\"", tdir);
            failed = 1;
            break;
        }
        nb[i] = xmalloc(sizeof(st_block));
        if ((rc = st_block_open(nb[i], bdir, 0, e))) {
            st_block_close(nb[i]);
            free(nb[i]);
            nb[i] = NULL;
            failed = 1;
            free(bdir);
            break;
        }
        free(bdir);
    }
    pthread_rwlock_wrlock(&s->lock);
    if (!failed) {
        for (size_t i = 0; i < nf; i++) {
            if (nb[i])
                add_block(s, nb[i]);
            st_head_release(fl[i]);
            free(fl[i]);
        }
        s->n_flushing = 0;
    } else {
        /* Keep the heads (still queried) and drop the blocks written this round: the next flush retries. */
        for (size_t i = 0; i < nf; i++)
            if (nb[i]) {
                st_block_remove(nb[i]->dir);
                st_block_close(nb[i]);
                free(nb[i]);
            }
    }
    pthread_rwlock_unlock(&s->lock);
    free(nb);
    free(fl);
    if (!failed) {
        if ((rc = write_checkpoint(s->wal_dir, seq)) == 0) {
            s->checkpoint = seq;
            st_wal_remove_upto(s->wal_dir, seq);
        } else {
            herr_set(e, rc, "cannot write the WAL checkpoint");
        }
        __atomic_add_fetch(&s->flushes, 1, __ATOMIC_RELAXED);
    }
    pthread_mutex_unlock(&s->maint);
    return failed || rc ? (rc ? rc : -EIO) : 0;
}

static int cmp_block_time(const void *a, const void *b)
{
    const st_block *x = *(st_block *const *)a, *y = *(st_block *const *)b;
    if (x->min_ts != y->min_ts)
        return x->min_ts < y->min_ts ? -1 : 1;
    return strcmp(x->id, y->id);
}

/*
 * The compaction group of a block: its whole compaction window (24 h) once
 * that window has ended, else its own partition (1 h). So blocks flushed
 * every few minutes are merged per hour while the day is running (each pass
 * rewrites at most an hour), and into one block per day afterwards.
 */
static int64_t group_window(const store *s, int64_t window, int64_t now)
{
    int64_t cw = floor_div(window, s->o.compact_ns) * s->o.compact_ns;
    if (cw + s->o.compact_ns <= now)
        return cw;
    return floor_div(window, s->o.block_ns) * s->o.block_ns;
}

static void remove_blocks(store *s, st_block **del, size_t n)
{
    pthread_rwlock_wrlock(&s->lock);
    for (size_t k = 0; k < n; k++)
        for (size_t i = 0; i < s->n_blocks; i++)
            if (s->blocks[i] == del[k]) {
                s->blocks[i] = s->blocks[--s->n_blocks];
                break;
            }
    pthread_rwlock_unlock(&s->lock);
    for (size_t k = 0; k < n; k++) {
        st_block_remove(del[k]->dir);
        st_block_close(del[k]);
        free(del[k]);
    }
    if (n) {
        st_fsync_dir(s->tenants_dir);
        __atomic_add_fetch(&s->blocks_deleted, n, __ATOMIC_RELAXED);
    }
}

int store_compact(store *s, herr *e)
{
    if (s->o.read_only)
        return herr_set(e, HE_USAGE, "the store is open read-only");
    pthread_mutex_lock(&s->maint);
    pthread_rwlock_rdlock(&s->lock);
    size_t n = s->n_blocks;
    st_block **all = xmallocarray(n + 1, sizeof(*all));
    if (n)
        memcpy(all, s->blocks, n * sizeof(*all));
    pthread_rwlock_unlock(&s->lock);
    int rc = 0;

    /* Retention first: nothing to merge in what is about to go. */
    if (s->o.retention_ns > 0) {
        int64_t cutoff = now_ns() - s->o.retention_ns;
        size_t nd = 0;
        st_block **del = xmallocarray(n + 1, sizeof(*del));
        for (size_t i = 0; i < n;) {
            if (all[i]->max_ts < cutoff) {
                log_info("retention: deleting block \"%s\" (newest profile older than the retention period)", all[i]->dir);
                del[nd++] = all[i];
                all[i] = all[--n];
            } else {
                i++;
            }
        }
        remove_blocks(s, del, nd);
        free(del);
    }

    qsort(all, n, sizeof(*all), cmp_block_time);
    char *used = xcalloc(n + 1, 1);
    int64_t now = now_ns();
    for (size_t i = 0; i < n && !rc; i++) {
        if (used[i] || all[i]->flush_seq > s->checkpoint)
            continue;
        int64_t cw = group_window(s, all[i]->window, now);
        st_block **grp = xmallocarray(n + 1, sizeof(*grp));
        size_t ng = 0;
        for (size_t j = i; j < n; j++) {
            if (used[j] || all[j]->flush_seq > s->checkpoint || strcmp(all[j]->tenant, all[i]->tenant) ||
                group_window(s, all[j]->window, now) != cw)
                continue;
            grp[ng++] = all[j];
            used[j] = 1;
        }
        if (ng >= 2) {
            char tdir[PATH_MAX];
            snprintf(tdir, sizeof(tdir), "%s/%s", s->tenants_dir, all[i]->tenant);
            char *bdir = NULL;
            rc = st_block_compact(grp, ng, tdir, cw, &bdir, e);
            if (!rc) {
                st_block *nb = xmalloc(sizeof(*nb));
                rc = st_block_open(nb, bdir, 0, e);
                if (rc) {
                    st_block_close(nb);
                    free(nb);
                } else {
                    pthread_rwlock_wrlock(&s->lock);
                    add_block(s, nb);
                    pthread_rwlock_unlock(&s->lock);
                    remove_blocks(s, grp, ng);
                    __atomic_add_fetch(&s->compactions, 1, __ATOMIC_RELAXED);
                }
                free(bdir);
            }
        }
        free(grp);
    }
    free(used);
    free(all);
    pthread_mutex_unlock(&s->maint);
    return rc;
}

static void *bg_main(void *arg)
{
    store *s = arg;
    int64_t last_compact = mono_ns(), last_sync = mono_ns();
    pthread_mutex_lock(&s->bg_mu);
    while (!s->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        int64_t step = s->o.fsync == STORE_FSYNC_BATCH ? s->o.fsync_batch_ns : 1000000000LL;
        if (step <= 0 || step > 1000000000LL)
            step = 1000000000LL;
        ts.tv_nsec += step;
        ts.tv_sec += ts.tv_nsec / 1000000000L;
        ts.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&s->bg_cv, &s->bg_mu, &ts);
        if (s->stop)
            break;
        pthread_mutex_unlock(&s->bg_mu);
        int64_t now = mono_ns();
        if (s->o.fsync == STORE_FSYNC_BATCH && now - last_sync >= s->o.fsync_batch_ns) {
            st_wal_sync(&s->wal);
            last_sync = now;
        }
        pthread_rwlock_rdlock(&s->lock);
        size_t hb = heads_bytes(s);
        int old = 0;
        for (size_t i = 0; i < s->n_heads; i++)
            old |= now - s->heads[i]->created_mono >= s->o.flush_interval_ns;
        pthread_rwlock_unlock(&s->lock);
        herr e;
        herr_clear(&e);
        int rc;
        if ((hb > s->o.head_max_bytes || old) && (rc = store_flush(s, &e)))
            log_error("flush failed: %s", herr_msg(&e, rc));
        if (now - last_compact >= s->o.compact_interval_ns) {
            herr_clear(&e);
            if ((rc = store_compact(s, &e)))
                log_error("compaction failed: %s", herr_msg(&e, rc));
            last_compact = now;
        }
        pthread_mutex_lock(&s->bg_mu);
    }
    pthread_mutex_unlock(&s->bg_mu);
    return NULL;
}

int store_get_stats(store *s, store_stats *out)
{
    memset(out, 0, sizeof(*out));
    pthread_rwlock_rdlock(&s->lock);
    for (size_t i = 0; i < s->n_blocks; i++) {
        st_block *b = s->blocks[i];
        out->n_blocks++;
        out->n_series += b->n_series;
        out->n_profiles += b->n_profiles;
        out->n_samples += b->n_samples;
        out->bytes_index += b->bytes_index;
        out->bytes_symbols += b->bytes_symbols;
        out->bytes_samples += b->bytes_samples;
    }
    st_head **lists[2] = {s->heads, s->flushing};
    size_t counts[2] = {s->n_heads, s->n_flushing};
    for (int l = 0; l < 2; l++)
        for (size_t i = 0; i < counts[l]; i++) {
            out->head_profiles += lists[l][i]->n_profiles;
            out->head_samples += lists[l][i]->n_rows;
            out->head_bytes += st_head_bytes(lists[l][i]);
            out->head_series += lists[l][i]->n_series;
        }
    out->n_damaged_blocks = s->n_damaged;
    pthread_rwlock_unlock(&s->lock);
    out->wal_bytes = s->wal_open ? s->wal.seg_bytes : s->wal_replayed_bytes;
    out->ingested_profiles = __atomic_load_n(&s->ingested_profiles, __ATOMIC_RELAXED);
    out->ingested_samples = __atomic_load_n(&s->ingested_samples, __ATOMIC_RELAXED);
    out->flushes = __atomic_load_n(&s->flushes, __ATOMIC_RELAXED);
    out->compactions = __atomic_load_n(&s->compactions, __ATOMIC_RELAXED);
    out->blocks_deleted = __atomic_load_n(&s->blocks_deleted, __ATOMIC_RELAXED);
    if (s->wal_open) {
        out->wal_fsync_failures = __atomic_load_n(&s->wal.fsync_fail, __ATOMIC_RELAXED);
        out->wal_fsync_seconds = (double)__atomic_load_n(&s->wal.fsync_ns, __ATOMIC_RELAXED) / 1e9;
        for (size_t b = 0; b <= STORE_FSYNC_BUCKETS; b++)
            out->wal_fsync_bucket[b] = __atomic_load_n(&s->wal.fsync_bucket[b], __ATOMIC_RELAXED);
        /* the count is the buckets' sum, so the exported histogram is consistent under concurrent syncs */
        for (size_t b = 0; b <= STORE_FSYNC_BUCKETS; b++)
            out->wal_fsyncs += out->wal_fsync_bucket[b];
    }
    return 0;
}
