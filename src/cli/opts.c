/*
 * opts.c: table-driven option parsing for the hearth subcommands (opts.h).
 *
 * One left-to-right pass over argv: an argument starting with "-" (other
 * than "-" itself) is looked up in the table by long or short name, takes
 * its value from "=VALUE", the rest of a short option ("-oFILE") or the next
 * argument, and is converted and checked by kind; anything else is a
 * positional and is moved to the front of argv (argv[1..]), keeping order,
 * so no allocation is needed for them. A second pass fills the options that
 * were not seen from their environment variables, so a flag always wins.
 *
 * Invariants: a value is stored only after it checked out; every error is
 * one line naming the option or variable and the offending value; lists are
 * capped (spec max, default 4096 entries).
 */
#include "core/common.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>

#include "cli/opts.h"
#include "core/err.h"
#include "core/mem.h"
#include "core/units.h"

#define OPTS_LIST_DEFAULT_MAX 4096

int opts_fail(const opt_cmd *c, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "hearth %s: ", c->name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return 2;
}

void opts_list_release(opts_list *l)
{
    free(l->v);
    l->v = NULL;
    l->n = l->cap = 0;
}

/* "--name", "-o" or "$VAR (for --name)": how an error names where a value came from. */
static void opt_label(const opt_spec *o, const char *env, char *out, size_t cap)
{
    char flag[96];
    if (o->name) snprintf(flag, sizeof flag, "--%s", o->name);
    else snprintf(flag, sizeof flag, "-%c", o->short_name);
    if (env) snprintf(out, cap, "$%s (for %s)", env, flag);
    else snprintf(out, cap, "%s", flag);
}

/* Whole number: optional sign, digits only, no trailing text, fits a long. */
static int parse_long(const char *s, long *v)
{
    char *end;
    const char *p = s;
    if (*p == '-' || *p == '+') p++;
    if (!isdigit((unsigned char)*p)) return HE_FORMAT;
    errno = 0;
    *v = strtol(s, &end, 10);
    if (errno || *end) return HE_FORMAT;
    return 0;
}

static int parse_bool(const char *s, int *v)
{
    static const char *yes[] = {"1", "true", "yes", "on"}, *no[] = {"0", "false", "no", "off", ""};
    for (size_t i = 0; i < ARRAY_SIZE(yes); i++)
        if (!strcasecmp(s, yes[i])) return *v = 1, 0;
    for (size_t i = 0; i < ARRAY_SIZE(no); i++)
        if (!strcasecmp(s, no[i])) return *v = 0, 0;
    return HE_FORMAT;
}

/* Converts and stores val for o; env is the variable it came from or NULL. */
static int opt_store(const opt_cmd *c, const opt_spec *o, const char *val, const char *env)
{
    char label[160];
    opt_label(o, env, label, sizeof label);
    switch (o->kind) {
    case OPT_STRING:
        *(const char **)o->dst = val;
        return 0;
    case OPT_FLAG:
        if (!env) {
            *(int *)o->dst = 1;
            return 0;
        }
        if (parse_bool(val, (int *)o->dst)) {
            opts_fail(c, "%s needs 1/true/yes/on or 0/false/no/off, got \"%s\"", label, val);
            return HE_USAGE;
        }
        return 0;
    case OPT_INT: {
        long v, lo = o->min, hi = o->max;
        if (!lo && !hi) lo = LONG_MIN, hi = LONG_MAX;
        if (parse_long(val, &v) || v < lo || v > hi) {
            opts_fail(c, "%s needs a whole number between %ld and %ld, got \"%s\"", label, lo, hi, val);
            return HE_USAGE;
        }
        *(long *)o->dst = v;
        return 0;
    }
    case OPT_SIZE: {
        uint64_t v;
        if (parse_size(val, &v)) {
            opts_fail(c, "%s needs a size such as 4096, 64k or 32MiB, got \"%s\"", label, val);
            return HE_USAGE;
        }
        if ((o->max > 0 && v > (uint64_t)o->max) || (o->min > 0 && v < (uint64_t)o->min)) {
            opts_fail(c, "%s needs a size between %ld and %ld bytes, got \"%s\"", label, o->min, o->max > 0 ? o->max : LONG_MAX, val);
            return HE_USAGE;
        }
        *(uint64_t *)o->dst = v;
        return 0;
    }
    case OPT_DURATION: {
        int64_t v;
        if (parse_duration_ns(val, &v) || v < 0) {
            opts_fail(c, "%s needs a duration such as 500ms, 10s, 1h30m or 30d, got \"%s\"", label, val);
            return HE_USAGE;
        }
        *(int64_t *)o->dst = v;
        return 0;
    }
    case OPT_LIST: {
        opts_list *l = o->dst;
        size_t max = o->max > 0 ? (size_t)o->max : OPTS_LIST_DEFAULT_MAX;
        if (l->n >= max) {
            opts_fail(c, "%s can be given at most %zu times", label, max);
            return HE_USAGE;
        }
        if (l->n == l->cap) {
            l->cap = l->cap ? l->cap * 2 : 8;
            l->v = xreallocarray(l->v, l->cap, sizeof *l->v);
        }
        l->v[l->n++] = val;
        return 0;
    }
    }
    opts_fail(c, "%s: option table entry has no kind", label);
    return HE_USAGE;
}

static const opt_spec *find_long(const opt_cmd *c, const char *name, size_t len)
{
    for (size_t i = 0; i < c->n_opts; i++)
        if (c->opts[i].name && strlen(c->opts[i].name) == len && !memcmp(c->opts[i].name, name, len))
            return &c->opts[i];
    return NULL;
}

static const opt_spec *find_short(const opt_cmd *c, char ch)
{
    for (size_t i = 0; i < c->n_opts; i++)
        if (c->opts[i].short_name && c->opts[i].short_name == ch) return &c->opts[i];
    return NULL;
}

static int add_pos(const opt_cmd *c, char **argv, opts_args *pos, char *a)
{
    if (c->max_pos >= 0 && pos->n >= c->max_pos) {
        if (c->max_pos == 0) opts_fail(c, "unexpected argument \"%s\" (this command takes only options)", a);
        else opts_fail(c, "unexpected argument \"%s\" (at most %d expected)", a, c->max_pos);
        return HE_USAGE;
    }
    argv[1 + pos->n++] = a;
    return 0;
}

int opts_parse(const opt_cmd *c, int argc, char **argv, opts_args *pos)
{
    unsigned char *seen = xcalloc(c->n_opts ? c->n_opts : 1, 1);
    int rc = 0, i, dd = 0;

    pos->v = argv + 1;
    pos->n = 0;
    pos->n_before_dd = -1;
    for (i = 1; i < argc && !rc; i++) {
        char *a = argv[i];
        const opt_spec *o = NULL;
        const char *val = NULL;
        int has_val = 0;

        if (dd || a[0] != '-' || !a[1]) {
            rc = add_pos(c, argv, pos, a);
            if (!rc && !dd && c->stop_at_pos) {
                pos->n_before_dd = pos->n;
                dd = 1;
            }
            continue;
        }
        if (!strcmp(a, "--")) {
            pos->n_before_dd = pos->n;
            dd = 1;
            continue;
        }
        if (a[1] == '-') {
            const char *name = a + 2, *eq = strchr(name, '=');
            size_t len = eq ? (size_t)(eq - name) : strlen(name);
            o = find_long(c, name, len);
            if (!o && len == 4 && !memcmp(name, "help", 4)) {
                opts_help(c, stdout);
                rc = OPTS_HELP;
                break;
            }
            if (!o) {
                opts_fail(c, "unknown option \"%.*s\" ('hearth %s --help' lists the options)", (int)(len + 2), a, c->name);
                rc = HE_USAGE;
                break;
            }
            if (eq) val = eq + 1, has_val = 1;
        } else {
            o = find_short(c, a[1]);
            if (!o && a[1] == 'h' && !a[2]) {
                opts_help(c, stdout);
                rc = OPTS_HELP;
                break;
            }
            if (!o) {
                opts_fail(c, "unknown option \"-%c\" ('hearth %s --help' lists the options)", a[1], c->name);
                rc = HE_USAGE;
                break;
            }
            if (a[2]) val = a + 2, has_val = 1;
        }
        if (o->kind == OPT_FLAG) {
            if (has_val) {
                char label[160];
                opt_label(o, NULL, label, sizeof label);
                opts_fail(c, "%s takes no value, got \"%s\"", label, val);
                rc = HE_USAGE;
                break;
            }
        } else if (!has_val) {
            if (i + 1 >= argc) {
                /* name it as typed: "-F" for a user who typed -F */
                opts_fail(c, "%s needs a value (%s)", a, o->arg ? o->arg : "VALUE");
                rc = HE_USAGE;
                break;
            }
            val = argv[++i];
        }
        rc = opt_store(c, o, val, NULL);
        seen[o - c->opts] = 1;
    }
    if (pos->n_before_dd < 0) pos->n_before_dd = pos->n;
    argv[1 + pos->n] = NULL; /* within argv: 1 + n <= argc, and argv[argc] is NULL */
    for (size_t k = 0; k < c->n_opts && !rc; k++) {
        const char *v;
        if (seen[k] || !c->opts[k].env || !(v = getenv(c->opts[k].env))) continue;
        rc = opt_store(c, &c->opts[k], v, c->opts[k].env);
    }
    free(seen);
    return rc;
}

void opts_help(const opt_cmd *c, FILE *f)
{
    fputs(c->usage, f);
    fputs("\noptions:\n", f);
    for (size_t i = 0; i < c->n_opts; i++) {
        const opt_spec *o = &c->opts[i];
        char head[128];
        int n = 0;
        if (o->short_name && o->name) n = snprintf(head, sizeof head, "  -%c, --%s", o->short_name, o->name);
        else if (o->short_name) n = snprintf(head, sizeof head, "  -%c", o->short_name);
        else n = snprintf(head, sizeof head, "      --%s", o->name);
        if (o->arg && n > 0 && (size_t)n < sizeof head) snprintf(head + n, sizeof head - (size_t)n, " %s", o->arg);
        if (strlen(head) <= 28) fprintf(f, "%-30s", head);
        else fprintf(f, "%s\n%30s", head, "");
        fputs(o->help ? o->help : "", f);
        if (o->kind == OPT_LIST) fputs(" (repeatable)", f);
        if (o->env) fprintf(f, " [$%s]", o->env);
        fputc('\n', f);
    }
    fprintf(f, "%-30s%s\n", "  -h, --help", "print this help");
    if (c->desc) {
        fputc('\n', f);
        fputs(c->desc, f);
    }
}
