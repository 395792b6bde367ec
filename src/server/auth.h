/*
 * auth.h: bearer/basic tokens bound to tenants, from --auth-token-file.
 *
 * File format, one token per line ('#' starts a comment, blank lines skipped):
 *
 *     TOKEN TENANT[,TENANT...]
 *
 * TENANT "*" allows every tenant. A request authenticates with
 * `Authorization: Bearer TOKEN` or `Authorization: Basic base64(USER:TOKEN)`
 * (what Grafana's data source and the SDKs' basic auth send). Its tenant is
 * X-Scope-OrgID, or, without that header, the basic-auth user if the token
 * allows it, else the token's first tenant. Missing or unknown token: 401;
 * a tenant the token is not bound to: 403. Tokens are compared in constant
 * time.
 */
#ifndef HEARTH_SERVER_AUTH_H
#define HEARTH_SERVER_AUTH_H

#include <stddef.h>

#include "core/err.h"

#define AUTH_MAX_TOKENS 4096
#define AUTH_MAX_TENANTS_PER_TOKEN 64

typedef struct auth_entry {
    char *token;
    char **tenants;
    size_t n_tenants;
    int any;
} auth_entry;

typedef struct auth_table {
    auth_entry *v;
    size_t n;
} auth_table;

/* Loads path into t (zeroed first). 0 or an error with e naming the line. */
int auth_load(auth_table *t, const char *path, herr *e);
void auth_release(auth_table *t);

/*
 * Checks a request: authorization header (may be NULL), X-Scope-OrgID (may
 * be NULL). Returns 0 with *tenant set (pointing into t or org_id), or 401 /
 * 403 with msg filled. Matches http_auth_fn (arg is the auth_table).
 */
int auth_check(void *arg, const char *authorization, const char *org_id, const char **tenant,
               char *msg, size_t msg_size);

#endif
