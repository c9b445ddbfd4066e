/*
 * strata's launcher: the ENTRYPOINT of every app image (CNB Platform API §launch). It picks the process, builds the
 * launch environment from the buildpack layers, runs exec.d programs, and replaces itself with the app through
 * execve. Images carry no runtime for it, so it is plain C, linked statically.
 */

#include "launcher.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define EXIT_PLATFORM_API 11
#define EXIT_BUILDPACK_API 12
#define EXIT_LAUNCH 82

extern char **environ;

static void die(int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("ERROR: failed to launch: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(code);
}

void *xrealloc(void *p, size_t n) {
    void *r = realloc(p, n ? n : 1);
    if (!r) die(EXIT_LAUNCH, "out of memory");
    return r;
}

static char *xstrdup(const char *s) {
    char *r = strdup(s ? s : "");
    if (!r) die(EXIT_LAUNCH, "out of memory");
    return r;
}

static char *join(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    char *r = xrealloc(NULL, la + lb + 2);
    memcpy(r, a, la);
    r[la] = '/';
    memcpy(r + la + 1, b, lb + 1);
    return r;
}

static char *concat3(const char *a, const char *b, const char *c) {
    size_t la = strlen(a), lb = strlen(b), lc = strlen(c);
    char *r = xrealloc(NULL, la + lb + lc + 1);
    memcpy(r, a, la);
    memcpy(r + la, b, lb);
    memcpy(r + la + lb, c, lc + 1);
    return r;
}

/* ---------- the environment, as an ordered list of NAME=value ---------- */

typedef struct {
    char **vars;
    size_t n;
} envlist;

static envlist env;

static ssize_t env_find(const char *name) {
    size_t ln = strlen(name);
    for (size_t i = 0; i < env.n; i++)
        if (strncmp(env.vars[i], name, ln) == 0 && env.vars[i][ln] == '=') return (ssize_t)i;
    return -1;
}

static const char *env_get(const char *name) {
    ssize_t i = env_find(name);
    return i < 0 ? NULL : env.vars[i] + strlen(name) + 1;
}

static void env_set(const char *name, const char *value) {
    char *entry = concat3(name, "=", value);
    ssize_t i = env_find(name);
    if (i >= 0) {
        free(env.vars[i]);
        env.vars[i] = entry;
        return;
    }
    env.vars = xrealloc(env.vars, (env.n + 2) * sizeof *env.vars);
    env.vars[env.n++] = entry;
    env.vars[env.n] = NULL;
}

static void env_unset(const char *name) {
    ssize_t i = env_find(name);
    if (i < 0) return;
    free(env.vars[i]);
    memmove(&env.vars[i], &env.vars[i + 1], (env.n - (size_t)i) * sizeof *env.vars);
    env.n--;
}

static void env_modify(const char *name, const char *action, const char *value, const char *delim) {
    const char *cur = env_get(name);
    if (!cur) cur = "";
    if (strcmp(action, "override") == 0) {
        env_set(name, value);
    } else if (strcmp(action, "default") == 0) {
        if (!*cur) env_set(name, value);
    } else if (strcmp(action, "append") == 0) {
        if (!*cur) env_set(name, value);
        else {
            char *a = concat3(cur, delim, value);
            env_set(name, a);
            free(a);
        }
    } else if (strcmp(action, "prepend") == 0) {
        if (!*cur) env_set(name, value);
        else {
            char *a = concat3(value, delim, cur);
            env_set(name, a);
            free(a);
        }
    }
}

/* ---------- files and directories ---------- */

static char *read_file(const char *path, size_t *len) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return NULL;
    strbuf b = {0};
    for (;;) {
        if (b.cap - b.len < 4096) {
            b.cap = b.cap ? b.cap * 2 : 8192;
            b.data = xrealloc(b.data, b.cap);
        }
        ssize_t r = read(fd, b.data + b.len, b.cap - b.len - 1);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        b.len += (size_t)r;
    }
    close(fd);
    if (!b.data) b.data = xrealloc(NULL, 1);
    b.data[b.len] = '\0';
    if (len) *len = b.len;
    return b.data;
}

static int is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int is_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int by_name(const struct dirent **a, const struct dirent **b) {
    return strcmp((*a)->d_name, (*b)->d_name);
}

/* Entries of a directory in byte order; want_dirs picks directories, otherwise regular files. */
static char **list_dir(const char *dir, int want_dirs, size_t *count) {
    struct dirent **names = NULL;
    int n = scandir(dir, &names, NULL, by_name);
    *count = 0;
    if (n < 0) return NULL;
    char **out = xrealloc(NULL, (size_t)(n + 1) * sizeof *out);
    for (int i = 0; i < n; i++) {
        const char *nm = names[i]->d_name;
        if (strcmp(nm, ".") != 0 && strcmp(nm, "..") != 0) {
            char *p = join(dir, nm);
            if (want_dirs ? is_dir(p) : is_file(p)) out[(*count)++] = xstrdup(nm);
            free(p);
        }
        free(names[i]);
    }
    free(names);
    return out;
}

static void free_list(char **l, size_t n) {
    for (size_t i = 0; i < n; i++) free(l[i]);
    free(l);
}

/* An env dir: NAME[.override|.default|.append|.prepend], with NAME.delim as the separator (none if absent). */
static void apply_env_dir(const char *dir) {
    size_t n;
    char **files = list_dir(dir, 0, &n);
    for (size_t i = 0; i < n; i++) {
        char *name = xstrdup(files[i]);
        char *dot = strchr(name, '.');
        const char *action = "override";
        if (dot) {
            *dot = '\0';
            action = dot + 1;
        }
        if (strcmp(action, "delim") != 0 && (strcmp(action, "override") == 0 || strcmp(action, "default") == 0 || strcmp(action, "append") == 0 || strcmp(action, "prepend") == 0)) {
            char *path = join(dir, files[i]);
            char *value = read_file(path, NULL);
            char *dpath = concat3(dir, "/", name);
            char *dfile = concat3(dpath, ".delim", "");
            char *delim = read_file(dfile, NULL);
            if (value) env_modify(name, action, value, delim ? delim : "");
            free(path);
            free(value);
            free(dpath);
            free(dfile);
            free(delim);
        }
        free(name);
    }
    free_list(files, n);
}

static void prepend_path(const char *var, const char *dir) {
    if (is_dir(dir)) env_modify(var, "prepend", dir, ":");
}

/* ---------- metadata.toml ---------- */

typedef struct {
    char *type;
    char **command;
    size_t ncommand;
    char **args;
    size_t nargs;
    int direct;
    char *buildpack_id;
    char *working_dir;
    char **exec_env;
    size_t nexec_env;
    int has_exec_env;
} process;

typedef struct {
    char *id;
    char *api;
} buildpack;

typedef struct {
    process *procs;
    int nprocs;
    buildpack *bps;
    int nbps;
    char *default_type;
} metadata;

static char **copy_strings(const toml_value *v, size_t *n) {
    if (v->kind == TOML_STRING) {
        char **r = xrealloc(NULL, 2 * sizeof *r);
        r[0] = xstrdup(v->str);
        *n = 1;
        return r;
    }
    char **r = xrealloc(NULL, (v->count + 1) * sizeof *r);
    for (size_t i = 0; i < v->count; i++) r[i] = xstrdup(v->items[i]);
    *n = v->count;
    return r;
}

static int on_metadata(void *ctx, const char *table, int index, const char *key, const toml_value *v) {
    metadata *md = ctx;
    if (index == -2) {
        if (strcmp(table, "processes") == 0) {
            md->procs = xrealloc(md->procs, (size_t)(md->nprocs + 1) * sizeof *md->procs);
            memset(&md->procs[md->nprocs], 0, sizeof *md->procs);
            return md->nprocs++;
        }
        if (strcmp(table, "buildpacks") == 0) {
            md->bps = xrealloc(md->bps, (size_t)(md->nbps + 1) * sizeof *md->bps);
            memset(&md->bps[md->nbps], 0, sizeof *md->bps);
            return md->nbps++;
        }
        return -1;
    }
    if (!key) return 0;
    if (*table == '\0' && strcmp(key, "buildpack-default-process-type") == 0 && v->kind == TOML_STRING) {
        md->default_type = xstrdup(v->str);
    } else if (strcmp(table, "processes") == 0 && index >= 0) {
        process *p = &md->procs[index];
        if (strcmp(key, "type") == 0 && v->kind == TOML_STRING) p->type = xstrdup(v->str);
        else if (strcmp(key, "command") == 0 && (v->kind == TOML_STRING || v->kind == TOML_ARRAY)) p->command = copy_strings(v, &p->ncommand);
        else if (strcmp(key, "args") == 0 && v->kind == TOML_ARRAY) p->args = copy_strings(v, &p->nargs);
        else if (strcmp(key, "direct") == 0 && v->kind == TOML_BOOL) p->direct = v->boolean;
        else if (strcmp(key, "buildpack-id") == 0 && v->kind == TOML_STRING) p->buildpack_id = xstrdup(v->str);
        else if (strcmp(key, "working-dir") == 0 && v->kind == TOML_STRING) p->working_dir = xstrdup(v->str);
        else if (strcmp(key, "exec-env") == 0 && v->kind == TOML_ARRAY) {
            p->exec_env = copy_strings(v, &p->nexec_env);
            p->has_exec_env = 1;
        }
    } else if (strcmp(table, "buildpacks") == 0 && index >= 0) {
        buildpack *b = &md->bps[index];
        if (strcmp(key, "id") == 0 && v->kind == TOML_STRING) b->id = xstrdup(v->str);
        else if (strcmp(key, "api") == 0 && v->kind == TOML_STRING) b->api = xstrdup(v->str);
    }
    return 0;
}

/* exec.d output: top-level NAME = "value" pairs override the launch env. */
static int on_execd(void *ctx, const char *table, int index, const char *key, const toml_value *v) {
    (void)ctx;
    if (index == -2 || !key || *table || v->kind != TOML_STRING) return -1;
    env_set(key, v->str);
    return 0;
}

/* ---------- API versions ---------- */

static int parse_api(const char *s, int *major, int *minor) {
    if (!s) return 0;
    if (*s == 'v') s++;
    char *end;
    long ma = strtol(s, &end, 10);
    if (end == s) return 0;
    long mi = 0;
    if (*end == '.') {
        const char *m = end + 1;
        mi = strtol(m, &end, 10);
        if (end == m) return 0;
    }
    if (*end) return 0;
    *major = (int)ma;
    *minor = (int)mi;
    return 1;
}

/* at least 0.<minor> (major 0 throughout the supported window) */
static int api_at_least(int major, int minor, int want_minor) {
    return major > 0 || minor >= want_minor;
}

/* ---------- exec.d ---------- */

static void run_execd(const char *file, const char *app) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) die(EXIT_LAUNCH, "pipe: %s", strerror(errno));
    pid_t pid = fork();
    if (pid < 0) die(EXIT_LAUNCH, "fork: %s", strerror(errno));
    if (pid == 0) {
        /* fd 3 is the program's channel back to us, whatever number pipe() gave */
        if (dup2(fds[1], 3) < 0) _exit(127);
        if (chdir(app) != 0) _exit(127);
        char *argv[] = {(char *)file, NULL};
        execve(file, argv, env.vars);
        fprintf(stderr, "ERROR: exec.d %s: %s\n", file, strerror(errno));
        _exit(127);
    }
    close(fds[1]);
    strbuf out = {0};
    char buf[4096];
    for (;;) {
        ssize_t r = read(fds[0], buf, sizeof buf);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        if (out.len + (size_t)r + 1 > out.cap) {
            out.cap = (out.len + (size_t)r + 1) * 2;
            out.data = xrealloc(out.data, out.cap);
        }
        memcpy(out.data + out.len, buf, (size_t)r);
        out.len += (size_t)r;
        out.data[out.len] = '\0';
    }
    close(fds[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) die(EXIT_LAUNCH, "exec.d program %s exited with status %d", file, WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
    if (out.len) {
        int line;
        const char *err = toml_parse(out.data, out.len, on_execd, NULL, &line);
        if (err) die(EXIT_LAUNCH, "exec.d program %s wrote invalid TOML on fd 3 (line %d: %s)", file, line, err);
    }
    free(out.data);
}

static void run_execd_dir(const char *dir, const char *app) {
    size_t n;
    char **files = list_dir(dir, 0, &n);
    for (size_t i = 0; i < n; i++) {
        char *p = join(dir, files[i]);
        run_execd(p, app);
        free(p);
    }
    free_list(files, n);
}

/* ---------- shell quoting ---------- */

static void sb_cat(strbuf *b, const char *s) {
    size_t l = strlen(s);
    if (b->len + l + 1 > b->cap) {
        b->cap = (b->len + l + 1) * 2;
        b->data = xrealloc(b->data, b->cap);
    }
    memcpy(b->data + b->len, s, l + 1);
    b->len += l;
}

/* Single quotes: the text reaches bash verbatim. */
static void sb_squote(strbuf *b, const char *s) {
    sb_cat(b, "'");
    for (; *s; s++) {
        if (*s == '\'') sb_cat(b, "'\\''");
        else {
            char c[2] = {*s, 0};
            sb_cat(b, c);
        }
    }
    sb_cat(b, "'");
}

/* Double quotes: variables and $(...) expand, word splitting and globbing do not. */
static void sb_dquote(strbuf *b, const char *s) {
    sb_cat(b, "\"");
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') sb_cat(b, "\\");
        char c[2] = {*s, 0};
        sb_cat(b, c);
    }
    sb_cat(b, "\"");
}

/* ---------- main ---------- */

static const char *find_in_path(const char *cmd) {
    if (strchr(cmd, '/')) return cmd;
    const char *path = env_get("PATH");
    if (!path) return cmd;
    char *copy = xstrdup(path);
    for (char *save = NULL, *d = strtok_r(copy, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        char *p = join(*d ? d : ".", cmd);
        if (access(p, X_OK) == 0 && is_file(p)) {
            free(copy);
            return p;
        }
        free(p);
    }
    free(copy);
    return cmd;
}

static char *escape_id(const char *id) {
    char *r = xstrdup(id);
    for (char *c = r; *c; c++)
        if (*c == '/') *c = '_';
    return r;
}

/* PATH without the entries that only make sense to the launcher itself. */
static void clean_path(void) {
    const char *path = env_get("PATH");
    if (!path) return;
    strbuf out = {0};
    sb_cat(&out, "");
    char *copy = xstrdup(path);
    for (char *save = NULL, *d = strtok_r(copy, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        if (strcmp(d, "/cnb/process") == 0 || strcmp(d, "/cnb/lifecycle") == 0) continue;
        if (out.len) sb_cat(&out, ":");
        sb_cat(&out, d);
    }
    env_set("PATH", out.data);
    free(out.data);
    free(copy);
}

int main(int argc, char **argv) {
    for (char **e = environ; *e; e++) {
        env.vars = xrealloc(env.vars, (env.n + 2) * sizeof *env.vars);
        env.vars[env.n++] = xstrdup(*e);
        env.vars[env.n] = NULL;
    }
    const char *papi = env_get("CNB_PLATFORM_API");
    int pmajor = 0, pminor = 15;
    if (papi && *papi && (!parse_api(papi, &pmajor, &pminor) || pmajor != 0 || pminor < 7 || pminor > 15))
        die(EXIT_PLATFORM_API, "Platform API %s is not supported (supported: 0.7 to 0.15)", papi);
    char *layers = xstrdup(env_get("CNB_LAYERS_DIR") && *env_get("CNB_LAYERS_DIR") ? env_get("CNB_LAYERS_DIR") : "/layers");
    char *app = xstrdup(env_get("CNB_APP_DIR") && *env_get("CNB_APP_DIR") ? env_get("CNB_APP_DIR") : "/workspace");
    char *exec_env = xstrdup(env_get("CNB_EXEC_ENV") && *env_get("CNB_EXEC_ENV") ? env_get("CNB_EXEC_ENV") : "production");
    if (env_get("CNB_PROCESS_TYPE")) fputs("Warning: CNB_PROCESS_TYPE is not supported by this platform API; ignoring it\n", stderr);

    char *mdpath = join(layers, "config/metadata.toml");
    size_t mdlen = 0;
    char *mdtext = read_file(mdpath, &mdlen);
    metadata md = {0};
    if (mdtext) {
        int line;
        const char *err = toml_parse(mdtext, mdlen, on_metadata, &md, &line);
        if (err) die(EXIT_LAUNCH, "%s: line %d: %s", mdpath, line, err);
    }
    for (int i = 0; i < md.nbps; i++) {
        int ma, mi;
        if (!parse_api(md.bps[i].api, &ma, &mi) || ma != 0 || mi < 7 || mi > 12)
            die(EXIT_BUILDPACK_API, "buildpack %s has Buildpack API %s, which is not supported (0.7 to 0.12)", md.bps[i].id ? md.bps[i].id : "?", md.bps[i].api ? md.bps[i].api : "(none)");
    }

    /* Which process: one named by argv[0], else the user's command (direct after --, else through the shell). */
    const char *self = strrchr(argv[0], '/');
    self = self ? self + 1 : argv[0];
    process *proc = NULL;
    for (int i = 0; i < md.nprocs; i++)
        if (md.procs[i].type && strcmp(md.procs[i].type, self) == 0) proc = &md.procs[i];
    char **user_args = argv + 1;
    int nuser = argc - 1;
    int direct;
    char **final_argv;
    size_t nfinal = 0;
    const char *proc_type = proc ? proc->type : "";
    const char *working_dir = app;
    if (proc) {
        if (api_at_least(pmajor, pminor, 15) && proc->has_exec_env) {
            int ok = 0;
            for (size_t i = 0; i < proc->nexec_env; i++)
                if (strcmp(proc->exec_env[i], "*") == 0 || strcmp(proc->exec_env[i], exec_env) == 0) ok = 1;
            if (!ok) die(EXIT_LAUNCH, "process type %s is not for the %s execution environment", proc->type, exec_env);
        }
        if (proc->ncommand == 0) die(EXIT_LAUNCH, "process type %s has no command", proc->type);
        int bmajor = 0, bminor = 12;
        for (int i = 0; i < md.nbps; i++)
            if (proc->buildpack_id && md.bps[i].id && strcmp(md.bps[i].id, proc->buildpack_id) == 0) parse_api(md.bps[i].api, &bmajor, &bminor);
        direct = proc->direct;
        final_argv = xrealloc(NULL, (proc->ncommand + proc->nargs + (size_t)nuser + 1) * sizeof *final_argv);
        for (size_t i = 0; i < proc->ncommand; i++) final_argv[nfinal++] = proc->command[i];
        /* Default args give way to the user's unless the process predates Buildpack API 0.9 or the platform 0.10. */
        int replace = api_at_least(pmajor, pminor, 10) && (proc->ncommand > 1 || api_at_least(bmajor, bminor, 9));
        if (!(replace && nuser > 0))
            for (size_t i = 0; i < proc->nargs; i++) final_argv[nfinal++] = proc->args[i];
        for (int i = 0; i < nuser; i++) final_argv[nfinal++] = user_args[i];
        final_argv[nfinal] = NULL;
        if (proc->working_dir && *proc->working_dir) working_dir = proc->working_dir;
    } else {
        if (nuser == 0) die(EXIT_LAUNCH, "no process type \"%s\" and no command given: pass a command, or -- and a command to run it directly", self);
        direct = strcmp(user_args[0], "--") == 0;
        if (direct) {
            user_args++;
            nuser--;
            if (nuser == 0) die(EXIT_LAUNCH, "a command is required after --");
        }
        final_argv = user_args;
        nfinal = (size_t)nuser;
    }

    /* The launch env: the image's env minus the lifecycle's settings, then each buildpack's layers. */
    env_unset("CNB_APP_DIR");
    env_unset("CNB_LAYERS_DIR");
    env_unset("CNB_PROCESS_TYPE");
    env_unset("CNB_PLATFORM_API");
    env_unset("CNB_DEPRECATION_MODE");
    clean_path();
    strbuf profiles = {0};
    sb_cat(&profiles, "");
    for (int b = 0; b < md.nbps; b++) {
        if (!md.bps[b].id) continue;
        char *esc = escape_id(md.bps[b].id);
        char *bpdir = join(layers, esc);
        size_t nl;
        char **lnames = list_dir(bpdir, 1, &nl);
        for (size_t l = 0; l < nl; l++) {
            size_t ln = strlen(lnames[l]);
            if (ln > 7 && strcmp(lnames[l] + ln - 7, ".ignore") == 0) continue;
            char *ldir = join(bpdir, lnames[l]);
            char *bin = join(ldir, "bin"), *lib = join(ldir, "lib");
            prepend_path("PATH", bin);
            prepend_path("LD_LIBRARY_PATH", lib);
            free(bin);
            free(lib);
            char *e1 = join(ldir, "env"), *e2 = join(ldir, "env.launch");
            apply_env_dir(e1);
            apply_env_dir(e2);
            if (*proc_type) {
                char *e3 = join(e2, proc_type);
                apply_env_dir(e3);
                free(e3);
            }
            free(e1);
            free(e2);
            free(ldir);
        }
        /* exec.d and profile.d per layer: the generic dir, then the process type's (the reference's order). */
        for (size_t l = 0; l < nl; l++) {
            size_t ln = strlen(lnames[l]);
            if (ln > 7 && strcmp(lnames[l] + ln - 7, ".ignore") == 0) continue;
            char *ldir = join(bpdir, lnames[l]);
            char *xd = join(ldir, "exec.d");
            run_execd_dir(xd, app);
            if (*proc_type) {
                char *xt = join(xd, proc_type);
                run_execd_dir(xt, app);
                free(xt);
            }
            if (!direct) {
                char *pd = join(ldir, "profile.d");
                const char *dirs[2] = {pd, NULL};
                char *pt = *proc_type ? join(pd, proc_type) : NULL;
                dirs[1] = pt;
                for (int d = 0; d < 2; d++) {
                    if (!dirs[d]) continue;
                    size_t nf;
                    char **pf = list_dir(dirs[d], 0, &nf);
                    for (size_t f = 0; f < nf; f++) {
                        char *p = join(dirs[d], pf[f]);
                        sb_cat(&profiles, "source ");
                        sb_squote(&profiles, p);
                        sb_cat(&profiles, "\n");
                        free(p);
                    }
                    free_list(pf, nf);
                }
                free(pd);
                free(pt);
            }
            free(xd);
            free(ldir);
        }
        free_list(lnames, nl);
        free(bpdir);
        free(esc);
    }

    if (direct) {
        if (chdir(working_dir) != 0) die(EXIT_LAUNCH, "working directory %s: %s", working_dir, strerror(errno));
        const char *path = find_in_path(final_argv[0]);
        execve(path, final_argv, env.vars);
        die(EXIT_LAUNCH, "exec %s: %s", final_argv[0], strerror(errno));
    }

    /* A shell process: one bash sources the profiles and the app's .profile, then runs the command line. */
    char *dot_profile = join(app, ".profile");
    if (is_file(dot_profile)) {
        sb_cat(&profiles, "source ");
        sb_squote(&profiles, dot_profile);
        sb_cat(&profiles, "\n");
    }
    sb_cat(&profiles, "cd ");
    sb_squote(&profiles, working_dir);
    sb_cat(&profiles, " || exit 1\n");
    if (nfinal == 1) {
        /* A lone command is a script in its own right. */
        sb_cat(&profiles, final_argv[0]);
        sb_cat(&profiles, "\n");
    } else {
        sb_cat(&profiles, "exec ");
        sb_cat(&profiles, final_argv[0]);
        for (size_t i = 1; i < nfinal; i++) {
            sb_cat(&profiles, " ");
            sb_dquote(&profiles, final_argv[i]);
        }
        sb_cat(&profiles, "\n");
    }
    const char *bash = find_in_path("bash");
    char *bash_argv[] = {"bash", "-c", profiles.data, (char *)self, NULL};
    execve(bash, bash_argv, env.vars);
    die(EXIT_LAUNCH, "exec bash: %s (shell processes need bash in the image)", strerror(errno));
    return EXIT_LAUNCH;
}
