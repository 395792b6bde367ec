/*
 * auth.c: token file loading and request checks (auth.h). The table is
 * read-only after loading, so checks need no lock. Lookup is a linear scan
 * with a constant-time compare per entry: token files are small, and the
 * scan always visits every entry so timing does not reveal a prefix.
 */
#include "core/common.h"

#include <strings.h>

#include "core/buf.h"
#include "core/mem.h"
#include "server/auth.h"
#include "server/connect.h"

void auth_release(auth_table *t)
{
    for (size_t i = 0; i < t->n; i++) {
        free(t->v[i].token);
        for (size_t k = 0; k < t->v[i].n_tenants; k++) free(t->v[i].tenants[k]);
        free(t->v[i].tenants);
    }
    free(t->v);
    memset(t, 0, sizeof *t);
}

int auth_load(auth_table *t, const char *path, herr *e)
{
    buf b;
    int rc, line_no = 0;
    char *line, *save = NULL;
    memset(t, 0, sizeof *t);
    buf_init(&b, 16u << 20);
    if ((rc = buf_read_file(&b, path))) {
        buf_release(&b);
        return herr_set(e, rc, "cannot read auth token file %s: %s", path, hearth_strerror(rc));
    }
    for (line = strtok_r(b.data ? b.data : (char *)"", "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *tok, *ten, *p;
        auth_entry en;
        line_no++;
        if ((p = strchr(line, '#'))) *p = 0;
        p = line;
        while (*p == ' ' || *p == '\t' || *p == '\r') p++;
        if (!*p) continue;
        tok = p;
        while (*p && *p != ' ' && *p != '\t') p++;
        if (!*p) {
            rc = herr_set(e, HE_FORMAT, "%s: line %d: a token needs its tenants: TOKEN TENANT[,TENANT...]", path, line_no);
            goto fail;
        }
        *p++ = 0;
        while (*p == ' ' || *p == '\t') p++;
        ten = p;
        for (p = ten + strlen(ten); p > ten && (p[-1] == ' ' || p[-1] == '\t' || p[-1] == '\r'); ) *--p = 0;
        if (!*ten) {
            rc = herr_set(e, HE_FORMAT, "%s: line %d: no tenants after the token", path, line_no);
            goto fail;
        }
        if (t->n >= AUTH_MAX_TOKENS) {
            rc = herr_set(e, HE_TOOBIG, "%s: more than %d tokens", path, AUTH_MAX_TOKENS);
            goto fail;
        }
        memset(&en, 0, sizeof en);
        en.token = xstrdup(tok);
        {
            char *s2 = NULL, *one;
            for (one = strtok_r(ten, ",", &s2); one; one = strtok_r(NULL, ",", &s2)) {
                while (*one == ' ') one++;
                if (!*one) continue;
                if (!strcmp(one, "*")) {
                    en.any = 1;
                    continue;
                }
                if (en.n_tenants >= AUTH_MAX_TENANTS_PER_TOKEN) break;
                en.tenants = xreallocarray(en.tenants, en.n_tenants + 1, sizeof *en.tenants);
                en.tenants[en.n_tenants++] = xstrdup(one);
            }
        }
        t->v = xreallocarray(t->v, t->n + 1, sizeof *t->v);
        t->v[t->n++] = en;
    }
    if (!t->n) {
        rc = herr_set(e, HE_FORMAT, "auth token file %s holds no tokens", path);
        goto fail;
    }
    buf_release(&b);
    return 0;
fail:
    buf_release(&b);
    auth_release(t);
    return rc;
}

static int ct_equal(const char *a, size_t na, const char *b, size_t nb)
{
    unsigned char d = na != nb;
    for (size_t i = 0; i < na; i++) d |= (unsigned char)(a[i] ^ b[i % (nb ? nb : 1)]);
    return d == 0;
}

static int allowed(const auth_entry *en, const char *tenant)
{
    if (en->any) return 1;
    for (size_t i = 0; i < en->n_tenants; i++)
        if (!strcmp(en->tenants[i], tenant)) return 1;
    return 0;
}

int auth_check(void *arg, const char *authz, const char *org, const char **tenant, char *msg, size_t msg_size)
{
    auth_table *t = arg;
    const char *tok = NULL;
    size_t tok_len = 0;
    char user[256] = "";
    char decoded[1024];
    const auth_entry *found = NULL;

    if (!authz || !*authz) {
        snprintf(msg, msg_size, "authentication required: send Authorization: Bearer TOKEN (or basic auth)");
        return 401;
    }
    if (!strncasecmp(authz, "Bearer ", 7)) {
        tok = authz + 7;
        while (*tok == ' ') tok++;
        tok_len = strlen(tok);
    } else if (!strncasecmp(authz, "Basic ", 6)) {
        buf b;
        const char *colon;
        buf_init(&b, sizeof decoded - 1);
        if (b64_decode(authz + 6, strlen(authz + 6), &b) || !b.data || !(colon = memchr(b.data, ':', b.len))) {
            buf_release(&b);
            snprintf(msg, msg_size, "malformed basic auth: want base64(user:token)");
            return 401;
        }
        memcpy(decoded, b.data, b.len);
        decoded[b.len] = 0;
        snprintf(user, sizeof user, "%.*s", (int)(colon - b.data), b.data);
        tok = decoded + (colon - b.data) + 1;
        tok_len = strlen(tok);
        buf_release(&b);
    } else {
        snprintf(msg, msg_size, "unsupported Authorization scheme: use Bearer or Basic");
        return 401;
    }
    for (size_t i = 0; i < t->n; i++)
        if (ct_equal(tok, tok_len, t->v[i].token, strlen(t->v[i].token)) && !found) found = &t->v[i];
    if (!found) {
        snprintf(msg, msg_size, "invalid token");
        return 401;
    }
    if (org) {
        if (!allowed(found, org)) {
            snprintf(msg, msg_size, "token is not allowed to access tenant \"%.64s\"", org);
            return 403;
        }
        *tenant = org;
        return 0;
    }
    if (user[0] && allowed(found, user)) {
        /* point into the table so the string outlives this call */
        for (size_t i = 0; i < found->n_tenants; i++)
            if (!strcmp(found->tenants[i], user)) {
                *tenant = found->tenants[i];
                return 0;
            }
    }
    if (found->n_tenants) {
        *tenant = found->tenants[0];
        return 0;
    }
    *tenant = "anonymous";
    return 0;
}
