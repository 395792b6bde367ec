/*
 * upload.c: the uploader thread (see upload.h).
 *
 * Owns a FIFO of pending items (name, time range, body) bounded by count
 * and bytes. Invariant: queued <= max_queue and queued bytes <= max_queue_bytes
 * after every push; the oldest items go first when room is needed, and each
 * one dropped is counted.
 *
 * The thread takes the head item, POSTs it, and on a retryable failure keeps
 * it at the head and sleeps min(max, base * 2^attempt) * uniform(0.5, 1)
 * ("equal jitter": spreads a fleet of agents after an outage while keeping
 * a lower bound), waking early when stopped. Non-retryable failures and
 * items past max_attempts are dropped and counted as failed.
 */
#include "core/common.h"
#include "agent/upload.h"

#include <pthread.h>
#include <time.h>

#include "agent/curl_dl.h"
#include "core/mem.h"

typedef struct item {
    struct item *next;
    char *name;
    int64_t from, until;
    uint32_t rate;
    char *body;
    size_t len;
    int attempts;
} item;

struct uploader {
    upl_opts o;
    const curl_fns *cu;
    char *server, *token, *basic, *tenant, *spy;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    item *head, *tail;
    size_t queued, queued_bytes;
    int stop;
    int64_t flush_deadline_ms;
    upl_stats st;
    uint64_t rng;
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void item_free(item *it)
{
    if (!it) return;
    free(it->name);
    free(it->body);
    free(it);
}

/* Allocation never aborts here: libhearth.so pushes from inside its host. */
static char *dup_str(const char *str)
{
    size_t n;
    char *d;
    if (!str) return NULL;
    n = strlen(str) + 1;
    d = hmallocarray(n, 1);
    if (d) memcpy(d, str, n);
    return d;
}

static size_t discard_body(char *p, size_t size, size_t n, void *ctx)
{
    (void)p;
    (void)ctx;
    return size * n;
}

/* Percent-encodes s into out (RFC 3986 unreserved kept). */
static int url_escape(buf *out, const char *s)
{
    static const char hx[] = "0123456789ABCDEF";
    int rc = 0;
    for (; *s && !rc; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
            c == '.' || c == '~')
            rc = buf_putc(out, (char)c);
        else {
            char e[3] = {'%', hx[c >> 4], hx[c & 15]};
            rc = buf_append(out, e, 3);
        }
    }
    return rc;
}

/* 0 = sent, 1 = retry, -1 = give up. */
static int post(uploader *u, CURL *curl, item *it, char *err, size_t err_size)
{
    buf url;
    struct curl_slist *hdrs = NULL;
    char hdr[1024], errbuf[CURL_ERROR_SIZE] = "";
    long status = 0;
    CURLcode cc;
    int rc;

    buf_init(&url, 16384);
    buf_puts(&url, u->server);
    if (url.len && url.data[url.len - 1] == '/') url.data[--url.len] = 0;
    buf_puts(&url, "/ingest?name=");
    url_escape(&url, it->name);
    buf_printf(&url, "&from=%" PRId64 "&until=%" PRId64 "&format=pprof&spyName=", it->from, it->until);
    url_escape(&url, u->spy);
    if (it->rate) buf_printf(&url, "&sampleRate=%u", it->rate);
    hdrs = u->cu->slist_append(hdrs, "Content-Type: application/octet-stream");
    if (u->token) {
        snprintf(hdr, sizeof(hdr), "Authorization: Bearer %s", u->token);
        hdrs = u->cu->slist_append(hdrs, hdr);
    }
    if (u->tenant) {
        snprintf(hdr, sizeof(hdr), "X-Scope-OrgID: %s", u->tenant);
        hdrs = u->cu->slist_append(hdrs, hdr);
    }
    u->cu->easy_reset(curl);
    u->cu->easy_setopt(curl, CURLOPT_URL, url.data);
    u->cu->easy_setopt(curl, CURLOPT_POST, 1L);
    u->cu->easy_setopt(curl, CURLOPT_POSTFIELDS, it->body);
    u->cu->easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)it->len);
    u->cu->easy_setopt(curl, CURLOPT_HTTPHEADER, hdrs);
    u->cu->easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long)u->o.timeout_ms);
    u->cu->easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, (long)MIN(u->o.timeout_ms, 5000));
    u->cu->easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    u->cu->easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard_body);
    u->cu->easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
    u->cu->easy_setopt(curl, CURLOPT_USERAGENT, "hearth-agent");
    if (u->basic) {
        u->cu->easy_setopt(curl, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
        u->cu->easy_setopt(curl, CURLOPT_USERPWD, u->basic);
    }
    cc = u->cu->easy_perform(curl);
    if (cc == CURLE_OK) u->cu->easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    u->cu->slist_free_all(hdrs);
    if (cc != CURLE_OK) {
        snprintf(err, err_size, "%s (POST %s)", errbuf[0] ? errbuf : u->cu->easy_strerror(cc), url.data);
        rc = 1;
    } else if (status >= 200 && status < 300) {
        rc = 0;
    } else {
        snprintf(err, err_size, "HTTP %ld (POST %s)", status, url.data);
        rc = (status == 429 || status == 408 || status >= 500) ? 1 : -1;
    }
    pthread_mutex_lock(&u->mu);
    u->st.last_http_status = (int)status;
    pthread_mutex_unlock(&u->mu);
    buf_release(&url);
    return rc;
}

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void wait_until(uploader *u, int64_t deadline_ms)
{
    /* With u->mu held. */
    while (!u->stop && mono_ms() < deadline_ms) {
        struct timespec ts;
        int64_t left = deadline_ms - mono_ms();
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += left / 1000;
        ts.tv_nsec += (left % 1000) * 1000000;
        if (ts.tv_nsec >= 1000000000) { ts.tv_sec++; ts.tv_nsec -= 1000000000; }
        pthread_cond_timedwait(&u->cv, &u->mu, &ts);
    }
}

static void *run(void *arg)
{
    uploader *u = arg;
    CURL *curl = u->cu->easy_init();
    char err[sizeof(u->st.last_error)];

    pthread_mutex_lock(&u->mu);
    for (;;) {
        while (!u->head && !u->stop) pthread_cond_wait(&u->cv, &u->mu);
        if (!u->head) break;
        if (u->stop && mono_ms() >= u->flush_deadline_ms) break;
        item *it = u->head;
        pthread_mutex_unlock(&u->mu);
        err[0] = 0;
        int rc = curl ? post(u, curl, it, err, sizeof(err)) : -1;
        pthread_mutex_lock(&u->mu);
        it->attempts++;
        if (rc == 0) {
            u->st.sent++;
            u->st.bytes_sent += it->len;
        } else {
            if (err[0]) snprintf(u->st.last_error, sizeof(u->st.last_error), "%s", err);
            if (rc > 0 && it->attempts < u->o.max_attempts) {
                u->st.retries++;
                if (u->head == it) {
                    int64_t base = (int64_t)u->o.backoff_base_ms << MIN(it->attempts - 1, 20);
                    int64_t delay = MIN(base, (int64_t)u->o.backoff_max_ms);
                    delay = delay / 2 + (int64_t)(rng_next(&u->rng) % (uint64_t)(delay / 2 + 1));
                    int64_t until = mono_ms() + delay;
                    if (u->stop && until > u->flush_deadline_ms) until = u->flush_deadline_ms;
                    wait_until(u, until);
                    if (u->stop && mono_ms() >= u->flush_deadline_ms) break;
                }
                continue;
            }
            u->st.failed++;
        }
        /* The item may have been dropped by upl_push while we were posting. */
        if (u->head == it) {
            u->head = it->next;
            if (!u->head) u->tail = NULL;
            u->queued--;
            u->queued_bytes -= it->len;
            item_free(it);
        }
    }
    pthread_mutex_unlock(&u->mu);
    if (curl) u->cu->easy_cleanup(curl);
    return NULL;
}

int upl_new(const upl_opts *o, uploader **out, herr *e)
{
    uploader *u;
    int rc;
    *out = NULL;
    if (!o || !o->server || !*o->server) return herr_set(e, HE_USAGE, "no server URL given (e.g. http://localhost:4040)");
    if (strncmp(o->server, "http://", 7) && strncmp(o->server, "https://", 8))
        return herr_set(e, HE_USAGE, "server URL '%s' must start with http:// or https://", o->server);
    char why[256];
    const curl_fns *cu = curl_fns_get(why, sizeof why);
    if (!cu) return herr_set(e, -ELIBACC, "%s", why);
    u = hmallocarray(1, sizeof(*u));
    if (!u) return herr_set(e, -ENOMEM, "out of memory");
    memset(u, 0, sizeof(*u));
    u->o = *o;
    u->cu = cu;
    if (!u->o.max_queue) u->o.max_queue = 64;
    if (!u->o.max_queue_bytes) u->o.max_queue_bytes = (size_t)64 << 20;
    if (!u->o.max_attempts) u->o.max_attempts = 5;
    if (!u->o.timeout_ms) u->o.timeout_ms = 10000;
    if (!u->o.backoff_base_ms) u->o.backoff_base_ms = 1000;
    if (!u->o.backoff_max_ms) u->o.backoff_max_ms = 30000;
    u->server = dup_str(o->server);
    u->token = dup_str(o->auth_token);
    u->basic = dup_str(o->basic_auth);
    u->tenant = dup_str(o->tenant);
    u->spy = dup_str(o->spy_name ? o->spy_name : "hearth");
    if (!u->server || !u->spy || (o->auth_token && !u->token) || (o->basic_auth && !u->basic) ||
        (o->tenant && !u->tenant)) {
        free(u->server); free(u->token); free(u->basic); free(u->tenant); free(u->spy);
        free(u);
        return herr_set(e, -ENOMEM, "out of memory");
    }
    u->rng = (uint64_t)mono_ms() * 0x9e3779b97f4a7c15ULL ^ (uint64_t)(uintptr_t)u;
    if (!u->rng) u->rng = 1;
    pthread_mutex_init(&u->mu, NULL);
    pthread_cond_init(&u->cv, NULL);
    if ((rc = pthread_create(&u->thread, NULL, run, u))) {
        herr_set(e, -rc, "cannot start the uploader thread: %s", strerror(rc));
        free(u->server); free(u->token); free(u->basic); free(u->tenant); free(u->spy);
        free(u);
        return -rc;
    }
    *out = u;
    return 0;
}

int upl_push(uploader *u, const char *name, int64_t from_s, int64_t until_s, uint32_t sample_rate, buf *body)
{
    item *it = hmallocarray(1, sizeof(*it));
    int dropped = 0;
    if (!it) { buf_release(body); return -ENOMEM; }
    memset(it, 0, sizeof(*it));
    it->name = dup_str(name);
    if (!it->name) { free(it); buf_release(body); return -ENOMEM; }
    it->from = from_s;
    it->until = until_s;
    it->rate = sample_rate;
    it->body = buf_detach(body, &it->len);
    pthread_mutex_lock(&u->mu);
    /* Drop oldest, but never the head while it is being posted (it is dropped after). */
    while (u->head && (u->queued + 1 > u->o.max_queue || u->queued_bytes + it->len > u->o.max_queue_bytes)) {
        item *victim = u->head->next ? u->head->next : NULL;
        if (!victim) break;
        u->head->next = victim->next;
        if (u->tail == victim) u->tail = u->head;
        u->queued--;
        u->queued_bytes -= victim->len;
        item_free(victim);
        u->st.dropped++;
        dropped = 1;
    }
    if (it->len > u->o.max_queue_bytes || (u->head && u->queued + 1 > u->o.max_queue)) {
        item_free(it);
        u->st.dropped++;
        pthread_mutex_unlock(&u->mu);
        return 1;
    }
    if (u->tail) u->tail->next = it; else u->head = it;
    u->tail = it;
    u->queued++;
    u->queued_bytes += it->len;
    pthread_cond_broadcast(&u->cv);
    pthread_mutex_unlock(&u->mu);
    return dropped;
}

void upl_get_stats(uploader *u, upl_stats *st)
{
    pthread_mutex_lock(&u->mu);
    *st = u->st;
    st->queued = u->queued;
    pthread_mutex_unlock(&u->mu);
}

void upl_close(uploader *u, int flush_ms, upl_stats *final)
{
    if (!u) {
        if (final) memset(final, 0, sizeof *final);
        return;
    }
    pthread_mutex_lock(&u->mu);
    u->stop = 1;
    u->flush_deadline_ms = mono_ms() + (flush_ms > 0 ? flush_ms : 0);
    pthread_cond_broadcast(&u->cv);
    pthread_mutex_unlock(&u->mu);
    pthread_join(u->thread, NULL);
    if (final) upl_get_stats(u, final);
    while (u->head) {
        item *n = u->head->next;
        item_free(u->head);
        u->head = n;
    }
    pthread_mutex_destroy(&u->mu);
    pthread_cond_destroy(&u->cv);
    free(u->server);
    free(u->token);
    free(u->basic);
    free(u->tenant);
    free(u->spy);
    free(u);
}

void upl_free(uploader *u, int flush_ms)
{
    upl_close(u, flush_ms, NULL);
}

int upl_app_name(buf *out, const char *base, const char *const *keys, const char *const *vals, size_t n)
{
    int rc = buf_puts(out, base);
    if (!n) return rc;
    rc |= buf_putc(out, '{');
    for (size_t i = 0; i < n && !rc; i++) {
        if (i) rc |= buf_putc(out, ',');
        rc |= buf_puts(out, keys[i]);
        rc |= buf_putc(out, '=');
        for (const char *v = vals[i]; *v && !rc; v++)
            rc |= buf_putc(out, (*v == '{' || *v == '}' || *v == ',' || *v == '=' || *v == '"') ? '_' : *v);
    }
    rc |= buf_putc(out, '}');
    return rc;
}
