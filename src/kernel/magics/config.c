/* %config: the connection's Spark SQL configuration through the Config RPC. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/execute.h"
#include "kernel/sql.h"
#include "spark/client.h"

static const char USAGE[] = "%config KEY=VALUE | %config KEY | %config --unset KEY | "
                            "%config --all [PREFIX]";

static char *trim(char *s) {
    while (*s == ' ' || *s == '\t') s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t')) s[--n] = 0;
    return s;
}

/* Shows the pairs a Config answer carries, one "key = value" per line, plus its warnings. */
static void show_pairs(kl_magic_ctx *c, const Spark__Connect__ConfigResponse *r) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) return;
    for (size_t i = 0; i < r->n_pairs; i++)
        fprintf(f, "%s%s = %s", i ? "\n" : "", r->pairs[i]->key ? r->pairs[i]->key : "",
                r->pairs[i]->value ? r->pairs[i]->value : "<unset>");
    fclose(f);
    kl_ctx_result(
        c,
        json_pack("{s:s}", "text/plain", r->n_pairs ? text : "(no settings of this session match)"),
        NULL);
    free(text);
}

static void show_warnings(kl_magic_ctx *c, const Spark__Connect__ConfigResponse *r) {
    for (size_t i = 0; i < r->n_warnings; i++) {
        char line[2048];
        snprintf(line, sizeof line, "Warning: %s\n", r->warnings[i]);
        kl_ctx_stream(c, "stderr", line);
    }
}

static int magic_config(kl_magic_ctx *c, const char *args, const char *body) {
    (void)body;
    char *copy = strdup(args);
    if (!copy) return kl_ctx_error(c, "MemoryError", "out of memory");
    char *a = trim(copy);
    Spark__Connect__ConfigRequest__Operation op = SPARK__CONNECT__CONFIG_REQUEST__OPERATION__INIT;
    Spark__Connect__ConfigRequest__Set set = SPARK__CONNECT__CONFIG_REQUEST__SET__INIT;
    Spark__Connect__ConfigRequest__Get get = SPARK__CONNECT__CONFIG_REQUEST__GET__INIT;
    Spark__Connect__ConfigRequest__GetAll all = SPARK__CONNECT__CONFIG_REQUEST__GET_ALL__INIT;
    Spark__Connect__ConfigRequest__Unset unset = SPARK__CONNECT__CONFIG_REQUEST__UNSET__INIT;
    Spark__Connect__KeyValue kv = SPARK__CONNECT__KEY_VALUE__INIT;
    Spark__Connect__KeyValue *pairs[] = {&kv};
    char *keys[1];
    const char *said = NULL;
    if (!*a) {
        free(copy);
        return kl_ctx_error(c, "UsageError", "usage: %s", USAGE);
    } else if (strncmp(a, "--all", 5) == 0 && (!a[5] || a[5] == ' ' || a[5] == '\t')) {
        char *prefix = trim(a + 5);
        all.prefix = *prefix ? prefix : NULL;
        op.op_type_case = SPARK__CONNECT__CONFIG_REQUEST__OPERATION__OP_TYPE_GET_ALL;
        op.get_all = &all;
    } else if (strncmp(a, "--unset", 7) == 0 && (a[7] == ' ' || a[7] == '\t')) {
        keys[0] = trim(a + 7);
        unset.n_keys = 1;
        unset.keys = keys;
        op.op_type_case = SPARK__CONNECT__CONFIG_REQUEST__OPERATION__OP_TYPE_UNSET;
        op.unset = &unset;
        said = "unset";
    } else if (strchr(a, '=')) {
        char *eq = strchr(a, '=');
        *eq = 0;
        kv.key = trim(a);
        kv.value = trim(eq + 1);
        if (!*kv.key) {
            free(copy);
            return kl_ctx_error(c, "UsageError", "%%config KEY=VALUE needs a key");
        }
        set.n_pairs = 1;
        set.pairs = pairs;
        op.op_type_case = SPARK__CONNECT__CONFIG_REQUEST__OPERATION__OP_TYPE_SET;
        op.set = &set;
        said = "set";
    } else if (a[0] == '-') {
        free(copy);
        return kl_ctx_error(c, "UsageError", "unknown option %s; usage: %s", a, USAGE);
    } else {
        keys[0] = a;
        get.n_keys = 1;
        get.keys = keys;
        op.op_type_case = SPARK__CONNECT__CONFIG_REQUEST__OPERATION__OP_TYPE_GET;
        op.get = &get;
    }
    kl_spark_client *client = kl_sql_client(c);
    int rc = -1;
    if (client) {
        kl_grpc_call_opts o = {.timeout_ms = 30000};
        Spark__Connect__ConfigResponse *r = NULL;
        kl_grpc_status st = {0};
        if (kl_spark_client_config(client, &op, &o, &r, &st) != 0) {
            kl_sql_report(c, &st, NULL);
        } else {
            show_warnings(c, r);
            if (said) {
                char line[1024];
                snprintf(line, sizeof line, "%s %s\n", said,
                         op.op_type_case == SPARK__CONNECT__CONFIG_REQUEST__OPERATION__OP_TYPE_SET
                             ? kv.key
                             : keys[0]);
                kl_ctx_stream(c, "stdout", line);
            } else {
                show_pairs(c, r);
            }
            spark__connect__config_response__free_unpacked(r, NULL);
            rc = 0;
        }
        kl_grpc_status_clear(&st);
    }
    free(copy);
    return rc;
}

int kl_config_magics_register(kl_magic_registry *reg) {
    static const kl_magic magics[] = {
        {"config", KL_MAGIC_LINE, "%config KEY=VALUE | KEY | --unset KEY | --all [PREFIX]",
         "Set, show or unset Spark SQL configuration of this connection's Spark session.",
         magic_config},
    };
    for (size_t i = 0; i < sizeof magics / sizeof *magics; i++) {
        int rc = kl_magic_register(reg, &magics[i]);
        if (rc != 0) return rc;
    }
    return 0;
}
