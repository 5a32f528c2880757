/* Installing a kernelspec: finding the kernels directory, writing kernel.json, copying logos. */
#include "jupyter/kernelspec.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const logo_files[] = {"logo-32x32.png", "logo-64x64.png", "logo-svg.svg"};

static bool nonempty(const char *s) {
    return s && *s;
}

int kl_kernelspec_user_dir(char *buf, size_t len, char *err, size_t errlen) {
    /* The same search order as jupyter_core's jupyter_data_dir() on Linux. */
    const char *data = getenv("JUPYTER_DATA_DIR");
    int n;
    if (nonempty(data)) {
        n = snprintf(buf, len, "%s/kernels", data);
    } else if (nonempty(getenv("XDG_DATA_HOME"))) {
        n = snprintf(buf, len, "%s/jupyter/kernels", getenv("XDG_DATA_HOME"));
    } else {
        const char *home = getenv("HOME");
        if (!nonempty(home)) {
            struct passwd *pw = getpwuid(getuid());
            home = pw ? pw->pw_dir : NULL;
        }
        if (!nonempty(home)) {
            snprintf(err, errlen,
                     "cannot find the user's Jupyter data directory: neither JUPYTER_DATA_DIR nor "
                     "HOME is set");
            return -1;
        }
        n = snprintf(buf, len, "%s/.local/share/jupyter/kernels", home);
    }
    if (n < 0 || (size_t)n >= len) {
        snprintf(err, errlen, "the Jupyter kernels directory path is too long");
        return -1;
    }
    return 0;
}

int kl_kernelspec_prefix_dir(const char *prefix, char *buf, size_t len) {
    if (!nonempty(prefix)) prefix = getenv("VIRTUAL_ENV");
    if (!nonempty(prefix)) return -1;
    int n = snprintf(buf, len, "%s/share/jupyter/kernels", prefix);
    if (n < 0 || (size_t)n >= len) return -1;
    return 0;
}

/* mkdir -p: creates path and its missing parents. 0 or -errno. */
static int make_dirs(const char *path) {
    char *p = strdup(path);
    if (!p) return -ENOMEM;
    int rc = 0;
    for (char *s = p + 1;; s++) {
        if (*s != '/' && *s != '\0') continue;
        char c = *s;
        *s = '\0';
        if (mkdir(p, 0755) < 0 && errno != EEXIST) {
            rc = -errno;
            break;
        }
        *s = c;
        if (c == '\0') break;
    }
    struct stat st;
    if (rc == 0 && (stat(p, &st) < 0 || !S_ISDIR(st.st_mode))) rc = -ENOTDIR;
    free(p);
    return rc;
}

static int write_all(int fd, const void *data, size_t len) {
    const char *p = data;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

/* Writes data to path through a temporary file and rename, so readers never see half a file. */
static int write_file(const char *path, const void *data, size_t len, mode_t mode) {
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 8);
    if (!tmp) return -ENOMEM;
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".XXXXXX", 8);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        int e = errno;
        free(tmp);
        return -e;
    }
    int rc = write_all(fd, data, len);
    if (rc == 0 && fchmod(fd, mode) < 0) rc = -errno;
    if (close(fd) < 0 && rc == 0) rc = -errno;
    if (rc == 0 && rename(tmp, path) < 0) rc = -errno;
    if (rc != 0) unlink(tmp);
    free(tmp);
    return rc;
}

/* Reads a whole (small) file into a malloc'd buffer. 0, or -errno (-ENOENT when absent). */
static int read_file(const char *path, char **data, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return -errno;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    int rc = buf ? 0 : -ENOMEM;
    while (rc == 0) {
        if (n == cap) {
            char *bigger = realloc(buf, cap * 2);
            if (!bigger) {
                rc = -ENOMEM;
                break;
            }
            buf = bigger;
            cap *= 2;
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (r == 0) {
            if (ferror(f)) rc = errno ? -errno : -EIO;
            break;
        }
    }
    fclose(f);
    if (rc < 0) {
        free(buf);
        return rc;
    }
    *data = buf;
    *len = n;
    return 0;
}

static bool valid_name(const char *name) {
    /* jupyter_client accepts ASCII letters, digits, '-', '.', '_' in kernel names. */
    if (!nonempty(name) || strcmp(name, ".") == 0 || strcmp(name, "..") == 0) return false;
    for (const char *p = name; *p; p++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '.' || c == '_';
        if (!ok) return false;
    }
    return true;
}

int kl_kernelspec_write(const char *kernels_dir, const kl_kernelspec *spec, char *err,
                        size_t errlen) {
    if (!valid_name(spec->name)) {
        snprintf(err, errlen,
                 "kernel name \"%s\" is invalid: use only ASCII letters, digits, '-', '.' and '_'",
                 spec->name ? spec->name : "");
        return -1;
    }
    if (!json_is_object(spec->kernel_json)) {
        snprintf(err, errlen, "kernel.json for \"%s\" must be a JSON object", spec->name);
        return -1;
    }
    char dir[4096], path[4096 + 64];
    if (snprintf(dir, sizeof dir, "%s/%s", kernels_dir, spec->name) >= (int)sizeof dir) {
        snprintf(err, errlen, "kernelspec directory path is too long");
        return -1;
    }
    int rc = make_dirs(dir);
    if (rc < 0) {
        snprintf(err, errlen, "%s: cannot create directory: %s", dir, strerror(-rc));
        return -1;
    }

    char *text = json_dumps(spec->kernel_json, JSON_INDENT(1));
    if (!text) {
        snprintf(err, errlen, "kernel.json for \"%s\" cannot be serialised", spec->name);
        return -1;
    }
    size_t tlen = strlen(text);
    text[tlen] = '\n'; /* replaces the NUL: json_dumps text is only used with its length now */
    snprintf(path, sizeof path, "%s/kernel.json", dir);
    rc = write_file(path, text, tlen + 1, 0644);
    free(text);
    if (rc < 0) {
        snprintf(err, errlen, "%s: cannot write: %s", path, strerror(-rc));
        return -1;
    }

    if (!spec->logo_dir) return 0;
    for (size_t i = 0; i < sizeof logo_files / sizeof logo_files[0]; i++) {
        char src[4096 + 64];
        if (snprintf(src, sizeof src, "%s/%s", spec->logo_dir, logo_files[i]) >= (int)sizeof src)
            continue;
        char *data = NULL;
        size_t len = 0;
        rc = read_file(src, &data, &len);
        if (rc == -ENOENT) continue; /* logos are optional */
        if (rc < 0) {
            snprintf(err, errlen, "%s: cannot read logo: %s", src, strerror(-rc));
            return -1;
        }
        snprintf(path, sizeof path, "%s/%s", dir, logo_files[i]);
        rc = write_file(path, data, len, 0644);
        free(data);
        if (rc < 0) {
            snprintf(err, errlen, "%s: cannot write: %s", path, strerror(-rc));
            return -1;
        }
    }
    return 0;
}
