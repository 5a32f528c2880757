/* Leveled logging to stderr, plain text or one JSON object per line. Thread-safe. */
#ifndef KL_RUNTIME_LOG_H
#define KL_RUNTIME_LOG_H

#include <stdbool.h>

typedef enum { KL_LOG_DEBUG = 0, KL_LOG_INFO, KL_LOG_WARN, KL_LOG_ERROR, KL_LOG_OFF } kl_log_level;

/* Reads KINDLING_LOG_LEVEL (debug|info|warn|error|off) and KINDLING_LOG_FORMAT (plain|json);
 * explicit calls below override the environment. */
void kl_log_init_from_env(void);
void kl_log_set_level(kl_log_level level);
void kl_log_set_json(bool json);
/* Parses a level name; returns -1 when unknown. */
int kl_log_parse_level(const char *name);
bool kl_log_enabled(kl_log_level level);

void kl_log_write(kl_log_level level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The level is checked before the arguments are evaluated, so a disabled debug line costs one
 * atomic load even when its arguments call functions. */
#define KL_LOG_AT(level, mod, ...)                                                                 \
    (kl_log_enabled(level) ? kl_log_write(level, mod, __VA_ARGS__) : (void)0)
#define KL_DEBUG(mod, ...) KL_LOG_AT(KL_LOG_DEBUG, mod, __VA_ARGS__)
#define KL_INFO(mod, ...)  KL_LOG_AT(KL_LOG_INFO, mod, __VA_ARGS__)
#define KL_WARN(mod, ...)  KL_LOG_AT(KL_LOG_WARN, mod, __VA_ARGS__)
#define KL_ERROR(mod, ...) KL_LOG_AT(KL_LOG_ERROR, mod, __VA_ARGS__)

#endif
