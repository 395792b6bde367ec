/*
 * t_main.c: runs the cases registered by TEST() in registration order.
 * Each case runs in-process; t_fail longjmps back here. With an argument,
 * only cases whose name contains it run.
 */
#include "t.h"

#include <dirent.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define T_MAX 1024
static struct { const char *name; t_fn fn; } cases[T_MAX];
static int n_cases;
static jmp_buf t_jmp;
static char tmp_root[256];

void t_register(const char *name, t_fn fn)
{
    if (n_cases < T_MAX) { cases[n_cases].name = name; cases[n_cases].fn = fn; n_cases++; }
}

void t_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    fprintf(stdout, "  FAIL %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
    fflush(stdout);
    longjmp(t_jmp, 1);
}

const char *t_testdata(const char *rel)
{
    static char path[8][1024];
    static int slot;
    const char *root = getenv("HEARTH_TESTDATA");
    char *p = path[slot++ % 8];
    snprintf(p, 1024, "%s/%s", root ? root : "../shared/testdata", rel);
    if (access(p, R_OK) != 0)
        t_fail(__FILE__, __LINE__, "test data %s is missing: the tests need ../shared/testdata beside the repo", p);
    return p;
}

static void rm_rf(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0) return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        struct dirent *e;
        while (d && (e = readdir(d))) {
            char sub[1024];
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
            rm_rf(sub);
        }
        if (d) closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

static void cleanup_tmp(void) { if (tmp_root[0]) rm_rf(tmp_root); }

const char *t_tmpdir(void)
{
    static char dir[300];
    static int seq;
    if (!tmp_root[0]) {
        snprintf(tmp_root, sizeof tmp_root, "/tmp/hearth-test-XXXXXX");
        if (!mkdtemp(tmp_root)) t_fail(__FILE__, __LINE__, "mkdtemp failed");
        atexit(cleanup_tmp);
    }
    snprintf(dir, sizeof dir, "%s/%d", tmp_root, seq++);
    mkdir(dir, 0700);
    return dir;
}

char *t_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *data;
    long n;
    if (!f) t_fail(__FILE__, __LINE__, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    data = malloc((size_t)n + 1);
    if (!data || fread(data, 1, (size_t)n, f) != (size_t)n) t_fail(__FILE__, __LINE__, "cannot read %s", path);
    fclose(f);
    data[n] = 0;
    if (len) *len = (size_t)n;
    return data;
}

int main(int argc, char **argv)
{
    static int passed, failed, i;
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (i = 0; i < n_cases; i++) {
        if (argc > 1 && !strstr(cases[i].name, argv[1])) continue;
        if (setjmp(t_jmp) == 0) {
            cases[i].fn();
            passed++;
            printf("  ok   %s\n", cases[i].name);
        } else {
            failed++;
            printf("  FAIL %s\n", cases[i].name);
        }
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
