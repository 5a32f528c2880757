/* Writing a kernelspec directory (kernel.json and logos). */
#ifndef KL_JUPYTER_KERNELSPEC_H
#define KL_JUPYTER_KERNELSPEC_H

#include <jansson.h>
#include <stddef.h>

typedef struct kl_kernelspec {
    const char *name;     /* directory name, e.g. "kindling" */
    json_t *kernel_json;  /* borrowed; written as kernel.json */
    const char *logo_dir; /* directory with logo-32x32.png / logo-64x64.png, or NULL */
} kl_kernelspec;

/* The kernels directory for an install location:
 *   user: $JUPYTER_DATA_DIR or ~/.local/share/jupyter, + /kernels
 *   prefix: PREFIX/share/jupyter/kernels (sys-prefix uses $VIRTUAL_ENV or the given prefix)
 * into buf. 0 or -1 with err. */
int kl_kernelspec_user_dir(char *buf, size_t len, char *err, size_t errlen);
int kl_kernelspec_prefix_dir(const char *prefix, char *buf, size_t len);
/* Creates kernels_dir/name/ (and parents) and writes the files. 0 or -1 with err. */
int kl_kernelspec_write(const char *kernels_dir, const kl_kernelspec *spec, char *err,
                        size_t errlen);

#endif
