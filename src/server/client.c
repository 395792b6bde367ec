/*
 * client.c: libcurl requests for the CLI clients (client.h). One easy
 * handle per request (the commands make a handful); Connect JSON errors
 * ({"code","message"}) and plain-text errors are both reduced to the
 * message so the user sees what the server said.
 */
#include "core/common.h"

#include <curl/curl.h>
#include <json-c/json.h>
#include <unistd.h>

#include "core/units.h"
#include "server/client.h"

void client_opts_default(client_opts *o)
{
    memset(o, 0, sizeof *o);
    o->url = getenv("HEARTH_URL") ? getenv("HEARTH_URL") : "http://localhost:4040";
    o->tenant = getenv("HEARTH_TENANT");
    o->token = getenv("HEARTH_TOKEN");
    o->timeout_s = 120;
}

static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
    buf *b = arg;
    return buf_append(b, p, size * n) ? 0 : size * n;
}

typedef struct progress {
    int64_t last_ns;
    int shown;
} progress;

static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
    progress *pr = arg;
    int64_t t = mono_ns();
    if (ultotal < (1 << 20) || t - pr->last_ns < 200000000LL) return 0;
    pr->last_ns = t;
    pr->shown = 1;
    fprintf(stderr, "\r  uploading %.1f / %.1f MiB (%3d%%)", (double)ulnow / 1048576.0, (double)ultotal / 1048576.0,
            (int)(ultotal ? ulnow * 100 / ultotal : 0));
    return 0;
}

static void server_message(const buf *b, long status, herr *e, int code)
{
    json_object *o = b->len ? json_tokener_parse(b->data) : NULL, *m;
    if (o && json_object_object_get_ex(o, "message", &m)) {
        herr_set(e, code, "server answered %ld: %s", status, json_object_get_string(m));
    } else {
        size_t n = b->len;
        while (n && (b->data[n - 1] == '\n' || b->data[n - 1] == '\r')) n--;
        herr_set(e, code, "server answered %ld: %.*s", status, (int)MIN(n, (size_t)200), b->len ? b->data : "(no body)");
    }
    if (o) json_object_put(o);
}

static int request(const client_opts *o, const char *method, const char *path, const char *ct, const void *body,
                   size_t n, buf *out, herr *e)
{
    CURL *c = curl_easy_init();
    struct curl_slist *h = NULL;
    char url[8192], hdr[512];
    char errbuf[CURL_ERROR_SIZE] = "";
    long status = 0;
    progress pr = {0, 0};
    CURLcode cc;
    int rc = 0;
    size_t ul = strlen(o->url);
    if (!c) return herr_set(e, -ENOMEM, "cannot initialize libcurl");
    while (ul && o->url[ul - 1] == '/') ul--;
    if (ul + strlen(path) + 1 > sizeof url) {
        curl_easy_cleanup(c);
        return herr_set(e, HE_TOOBIG, "URL too long");
    }
    memcpy(url, o->url, ul);
    memcpy(url + ul, path, strlen(path) + 1);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, o->timeout_s > 0 ? o->timeout_s : 120L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "hearth/0.1");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    if (ct) {
        snprintf(hdr, sizeof hdr, "Content-Type: %s", ct);
        h = curl_slist_append(h, hdr);
    }
    if (o->tenant && *o->tenant) {
        snprintf(hdr, sizeof hdr, "X-Scope-OrgID: %.150s", o->tenant);
        h = curl_slist_append(h, hdr);
    }
    if (o->token && *o->token) {
        snprintf(hdr, sizeof hdr, "Authorization: Bearer %.400s", o->token);
        h = curl_slist_append(h, hdr);
    }
    if (o->basic_auth && *o->basic_auth) {
        curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(c, CURLOPT_USERPWD, o->basic_auth);
    }
    h = curl_slist_append(h, "Expect:");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)n);
    }
    if (o->progress && isatty(2)) {
        curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(c, CURLOPT_XFERINFODATA, &pr);
        curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    }
    cc = curl_easy_perform(c);
    if (pr.shown) fprintf(stderr, "\r%60s\r", "");
    if (cc != CURLE_OK) {
        rc = herr_set(e, cc == CURLE_WRITE_ERROR ? HE_TOOBIG : -EIO, "%s %s: %s", method, url, errbuf[0] ? errbuf : curl_easy_strerror(cc));
    } else {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        if (status < 200 || status > 299) {
            rc = status >= 400 && status < 500 ? HE_FORMAT : -EIO;
            server_message(out, status, e, rc);
        }
    }
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return rc;
}

int client_post(const client_opts *o, const char *path, const char *ct, const void *body, size_t n, buf *out, herr *e)
{
    return request(o, "POST", path, ct, body ? body : "", n, out, e);
}

int client_get(const client_opts *o, const char *path, buf *out, herr *e)
{
    return request(o, "GET", path, NULL, NULL, 0, out, e);
}

int client_escape(const char *s, buf *out)
{
    static const char hx[] = "0123456789ABCDEF";
    int rc = 0;
    for (; *s && !rc; s++) {
        unsigned char ch = (unsigned char)*s;
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || strchr("-_.~", ch)) {
            rc = buf_putc(out, (char)ch);
        } else {
            char q[3] = {'%', hx[ch >> 4], hx[ch & 15]};
            rc = buf_append(out, q, 3);
        }
    }
    return rc;
}
