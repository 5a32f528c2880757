/* The comm manager: targets, comms owned by the connection that opened them, comm_info filtered by
 * target and by connection, closing from either side or with the connection, and a close that
 * arrives while a handler of the comm still runs. The kernel here has no sockets: what it would
 * publish is dropped. */
#include <criterion/criterion.h>
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/comm.h"

typedef struct record {
    int opens, msgs, closes;
    int close_with_msg; /* on_close calls that carried the closing message */
    json_t *last_data;
    bool refuse_open;
    bool close_inside_msg;   /* on_msg closes its own comm from the kernel's side */
    bool session_end_in_msg; /* on_msg ends its connection's comms */
    bool freed_during_msg;   /* on_close ran while on_msg was still running */
    bool in_msg;
} record;

static record rec;

static int t_open(kl_kernel *k, kl_comm *c, const kl_msg *m, json_t *data) {
    (void)k;
    (void)m;
    rec.opens++;
    json_decref(rec.last_data);
    rec.last_data = json_incref(data);
    kl_comm_set_user(c, &rec);
    return rec.refuse_open ? 1 : 0;
}

static void t_msg(kl_kernel *k, kl_comm *c, const kl_msg *m, json_t *data) {
    (void)m;
    rec.in_msg = true;
    rec.msgs++;
    json_decref(rec.last_data);
    rec.last_data = json_incref(data);
    if (rec.close_inside_msg) {
        kl_comm_close(k, c, NULL, NULL);
        cr_expect_not(kl_comm_is_open(c));
        cr_expect_eq(kl_comm_send(k, c, NULL, json_object(), NULL), -EPIPE);
    }
    if (rec.session_end_in_msg) kl_comm_close_session(k, kl_comm_session(c));
    /* the comm must still be usable here, whatever closed it */
    cr_expect_str_eq(kl_comm_target_name(c), "test.target");
    rec.in_msg = false;
}

static void t_close(kl_kernel *k, kl_comm *c, const kl_msg *m, json_t *data) {
    (void)k;
    (void)data;
    rec.closes++;
    if (m) rec.close_with_msg++;
    if (rec.in_msg) rec.freed_during_msg = true;
    cr_expect_eq(kl_comm_user(c), &rec);
}

static kl_kernel *kernel(void) {
    kl_kernel *k = calloc(1, sizeof *k);
    cr_assert_not_null(k);
    strcpy(k->session, "kernel-session");
    strcpy(k->kernel_id, "kernel-id");
    k->comms = kl_comm_manager_new();
    cr_assert_not_null(k->comms);
    static const kl_comm_target t = {
        .name = "test.target", .on_open = t_open, .on_msg = t_msg, .on_close = t_close};
    cr_assert_eq(kl_comm_register_target(k->comms, &t), 0);
    cr_assert_eq(kl_comm_register_target(k->comms, &t), -EEXIST);
    cr_assert_eq(kl_comm_register_builtin(k->comms), 0);
    memset(&rec, 0, sizeof rec);
    return k;
}

static void kernel_free(kl_kernel *k) {
    kl_comm_manager_free(k, k->comms);
    json_decref(rec.last_data);
    rec.last_data = NULL;
    free(k);
}

/* Handles one client message of msg_type from session with content (stolen). */
static void client(kl_kernel *k, const char *session, const char *msg_type, json_t *content) {
    kl_msg m;
    kl_msg_init(&m);
    m.header = json_pack("{s:s, s:s, s:s, s:s}", "msg_type", msg_type, "session", session, "msg_id",
                         "m1", "username", "u");
    m.content = content;
    m.parent_header = json_object();
    m.metadata = json_object();
    kl_comm_handle(k, session, &m);
    kl_msg_clear(&m);
}

static void open_comm(kl_kernel *k, const char *session, const char *id, const char *target) {
    client(k, session, "comm_open",
           json_pack("{s:s, s:s, s:{s:i}}", "comm_id", id, "target_name", target, "data", "x", 1));
}

static void msg_comm(kl_kernel *k, const char *session, const char *id, int v) {
    client(k, session, "comm_msg", json_pack("{s:s, s:{s:i}}", "comm_id", id, "data", "v", v));
}

static void close_comm(kl_kernel *k, const char *session, const char *id) {
    client(k, session, "comm_close", json_pack("{s:s, s:{}}", "comm_id", id, "data"));
}

Test(comm, open_message_close_by_the_owner) {
    kl_kernel *k = kernel();
    open_comm(k, "A", "c1", "test.target");
    cr_expect_eq(rec.opens, 1);
    cr_expect_eq(json_integer_value(json_object_get(rec.last_data, "x")), 1);
    kl_comm *c = kl_comm_find(k->comms, "c1");
    cr_assert_not_null(c);
    cr_expect_str_eq(kl_comm_session(c), "A");
    cr_expect(kl_comm_is_open(c));
    msg_comm(k, "A", "c1", 7);
    cr_expect_eq(rec.msgs, 1);
    cr_expect_eq(json_integer_value(json_object_get(rec.last_data, "v")), 7);
    close_comm(k, "A", "c1");
    cr_expect_eq(rec.closes, 1);
    cr_expect_eq(rec.close_with_msg, 1);
    cr_expect_null(kl_comm_find(k->comms, "c1"));
    msg_comm(k, "A", "c1", 8); /* a closed comm takes no more messages */
    cr_expect_eq(rec.msgs, 1);
    kernel_free(k);
}

Test(comm, another_connection_cannot_use_or_close_a_comm) {
    kl_kernel *k = kernel();
    open_comm(k, "A", "c1", "test.target");
    msg_comm(k, "B", "c1", 1);
    cr_expect_eq(rec.msgs, 0);
    close_comm(k, "B", "c1");
    cr_expect_eq(rec.closes, 0);
    cr_expect_not_null(kl_comm_find(k->comms, "c1"));
    /* nor take its id over */
    open_comm(k, "B", "c1", "test.target");
    cr_expect_eq(rec.opens, 1);
    cr_expect_str_eq(kl_comm_session(kl_comm_find(k->comms, "c1")), "A");
    msg_comm(k, "A", "c1", 1);
    cr_expect_eq(rec.msgs, 1);
    kernel_free(k);
    cr_expect_eq(rec.closes, 1); /* the manager closes what is left */
}

Test(comm, unknown_target_and_refused_open_leave_nothing_open) {
    kl_kernel *k = kernel();
    open_comm(k, "A", "c1", "no.such.target");
    cr_expect_eq(rec.opens, 0);
    cr_expect_null(kl_comm_find(k->comms, "c1"));
    rec.refuse_open = true;
    open_comm(k, "A", "c2", "test.target");
    cr_expect_eq(rec.opens, 1);
    cr_expect_eq(rec.closes, 1);
    cr_expect_null(kl_comm_find(k->comms, "c2"));
    json_t *info = kl_comm_info(k->comms, NULL);
    cr_expect_eq(json_object_size(info), 0);
    json_decref(info);
    kernel_free(k);
}

Test(comm, info_filters_by_target_and_connection) {
    kl_kernel *k = kernel();
    open_comm(k, "A", "a1", "test.target");
    open_comm(k, "A", "a2", "kindling.echo");
    open_comm(k, "B", "b1", "test.target");
    json_t *all = kl_comm_info(k->comms, NULL);
    cr_expect_eq(json_object_size(all), 3);
    cr_expect_str_eq(json_string_value(json_object_get(json_object_get(all, "a2"), "target_name")),
                     "kindling.echo");
    json_decref(all);
    json_t *t = kl_comm_info(k->comms, "test.target");
    cr_expect_eq(json_object_size(t), 2);
    cr_expect_null(json_object_get(t, "a2"));
    json_decref(t);
    json_t *a = kl_comm_info_session(k->comms, "A", NULL);
    cr_expect_eq(json_object_size(a), 2);
    cr_expect_null(json_object_get(a, "b1"));
    json_decref(a);
    json_t *at = kl_comm_info_session(k->comms, "A", "test.target");
    cr_expect_eq(json_object_size(at), 1);
    cr_expect_not_null(json_object_get(at, "a1"));
    json_decref(at);
    json_t *none = kl_comm_info_session(k->comms, "C", NULL);
    cr_expect_eq(json_object_size(none), 0);
    json_decref(none);
    kernel_free(k);
}

Test(comm, a_connection_ending_closes_its_comms_only) {
    kl_kernel *k = kernel();
    open_comm(k, "A", "a1", "test.target");
    open_comm(k, "A", "a2", "test.target");
    open_comm(k, "B", "b1", "test.target");
    cr_expect_eq(kl_comm_close_session(k, "A"), 2);
    cr_expect_eq(rec.closes, 2);
    cr_expect_eq(rec.close_with_msg, 0);
    cr_expect_null(kl_comm_find(k->comms, "a1"));
    cr_expect_not_null(kl_comm_find(k->comms, "b1"));
    cr_expect_eq(kl_comm_close_session(k, "A"), 0);
    kernel_free(k);
    cr_expect_eq(rec.closes, 3);
}

Test(comm, a_close_during_a_handler_waits_for_it) {
    kl_kernel *k = kernel();
    open_comm(k, "A", "c1", "test.target");
    rec.close_inside_msg = true;
    msg_comm(k, "A", "c1", 1);
    cr_expect_eq(rec.closes, 1);
    cr_expect_not(rec.freed_during_msg);
    cr_expect_null(kl_comm_find(k->comms, "c1"));

    rec.close_inside_msg = false;
    rec.session_end_in_msg = true;
    open_comm(k, "A", "c2", "test.target");
    msg_comm(k, "A", "c2", 1);
    cr_expect_eq(rec.closes, 2);
    cr_expect_not(rec.freed_during_msg);
    kernel_free(k);
    cr_expect_eq(rec.closes, 2);
}

static int echo_msgs;
static void own_msg(kl_kernel *k, kl_comm *c, const kl_msg *m, json_t *data) {
    (void)k;
    (void)m;
    (void)data;
    cr_expect_eq(kl_comm_user(c), &echo_msgs);
    echo_msgs++;
}

Test(comm, the_kernel_opens_comms_towards_a_client) {
    kl_kernel *k = kernel();
    static const kl_comm_target h = {.on_msg = own_msg};
    kl_comm *c = kl_comm_open_to(k, "A", NULL, "frontend.widget", &h, &echo_msgs,
                                 json_pack("{s:i}", "hello", 1));
    cr_assert_not_null(c);
    cr_expect_str_eq(kl_comm_target_name(c), "frontend.widget");
    cr_expect_eq(strlen(kl_comm_id(c)), 36);
    json_t *info = kl_comm_info(k->comms, "frontend.widget");
    cr_expect_not_null(json_object_get(info, kl_comm_id(c)));
    json_decref(info);
    char id[64];
    strcpy(id, kl_comm_id(c));
    msg_comm(k, "A", id, 1);
    msg_comm(k, "B", id, 1);
    cr_expect_eq(echo_msgs, 1);
    kl_comm_close(k, c, NULL, NULL);
    cr_expect_null(kl_comm_find(k->comms, id));
    /* a registered target by name */
    kl_comm *r = kl_comm_open(k, "A", "test.target", NULL, NULL);
    cr_assert_not_null(r);
    cr_expect_null(kl_comm_open(k, "A", "not.registered", NULL, NULL));
    kl_comm_set_user(r, &rec);
    close_comm(k, "A", kl_comm_id(r));
    cr_expect_eq(rec.closes, 1);
    kernel_free(k);
}
