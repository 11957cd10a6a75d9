/* The health-check runner of weft-agent: HTTP(S), TCP, UDP, gRPC, H2PING,
 * TTL and script checks run as Consul's agent runs them (docs/agent.md, "Health
 * checks").
 *
 * One runner owns one thread with a libevent loop; HTTP and TCP checks go
 * through libcurl's multi interface driven by that loop (name resolution
 * off the loop, nonblocking connects), scripts are spawned without a shell
 * in their own process group and watched through a pidfd. Nothing blocks
 * the loop and every buffer is bounded (CHK_OUTPUT_MAX).
 *
 * Callbacks (report, reap) are called from the runner's thread, never with
 * a lock of the runner held: they may call chk_runner_set and
 * chk_runner_ttl (which then run at once), not chk_runner_free.
 *
 * chk_runner_set and chk_runner_ttl may be called from any thread; from
 * another thread they hand the work to the runner's thread and wait for it
 * (so they must not be called holding a lock that the callbacks take).
 * When chk_runner_ttl returns, the report its update causes has already
 * been delivered. */
#ifndef WEFT_CHECKS_H
#define WEFT_CHECKS_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* Output kept per result, as Consul's DefaultBufSize. */
#define CHK_OUTPUT_MAX 4096

enum chk_status { CHK_PASSING, CHK_WARNING, CHK_CRITICAL };

/* "passing", "warning", "critical" (Consul's api.Health* values). */
const char *chk_status_name(enum chk_status s);
/* The inverse; WEFT_EINVAL for any other string. */
int chk_status_parse(const char *s, enum chk_status *out);

enum chk_type { CHK_HTTP, CHK_TCP, CHK_TTL, CHK_SCRIPT, CHK_GRPC, CHK_UDP, CHK_H2PING };

struct chk_def {                  /* caller-owned; the runner copies */
	const char *id;               /* unique on the agent */
	const char *service_id;       /* "" (or NULL) for a node-level check */
	enum chk_type type;
	const char *http;             /* URL (http:// or https://) */
	const char *method;           /* NULL: GET */
	const json_t *header;         /* {"Name": ["v", ...]} or NULL */
	const char *body;             /* NULL: none */
	int tls_skip_verify;
	const char *tcp;              /* HOST:PORT (IPv4/IPv6 literal or name) */
	const char *udp;              /* HOST:PORT, the same */
	const char *grpc;             /* HOST:PORT[/SERVICE] */
	int grpc_use_tls;
	const char *h2ping;           /* HOST:PORT */
	int h2ping_use_tls;           /* Consul's default is 1: the caller says */
	const char *const *args;      /* script argv: args[0] is the program */
	size_t nargs;
	int64_t interval_ms;          /* HTTP, TCP, script: > 0, raised to min_interval */
	int64_t timeout_ms;           /* 0: 10 s (HTTP, TCP), 30 s (script), as Consul */
	int64_t ttl_ms;               /* TTL: > 0 */
	int64_t deregister_after_ms;  /* 0: never; raised to min_deregister */
	enum chk_status initial;      /* status before the first result */
	/* Consul's thresholds (not for TTL checks): a result turns the check
	 * passing (or warning) after this many successes in a row, warning
	 * and critical after this many failures in a row (warning: 0 = the
	 * critical one). 0: at once. */
	int success_before_passing;
	int failures_before_warning;
	int failures_before_critical;
};

typedef void (*chk_report_fn)(void *arg, const char *check_id,
			      enum chk_status status, const char *output);
typedef void (*chk_reap_fn)(void *arg, const char *service_id, const char *check_id);

struct chk_runner_opts {
	chk_report_fn report;  /* a result whose status or output differs from the last */
	chk_reap_fn reap;      /* critical for longer than deregister_after */
	void *arg;
	int enable_scripts;    /* script checks refused by chk_runner_set unless set */
	/* Floors applied to definitions, as Consul's agent does (with a
	 * warning logged). 0: Consul's values, 1 s and 1 min. Tests lower them. */
	int64_t min_interval_ms;
	int64_t min_deregister_ms;
};

struct chk_runner;

int chk_runner_new(struct chk_runner **out, const struct chk_runner_opts *o, char **err);

/* Replaces the whole set. A check whose definition is unchanged keeps its
 * status and schedule; removed ones stop (a running script is killed); a
 * changed one starts again from its initial status. Bad definitions are
 * refused as a whole (nothing changes, WEFT_EINVAL) with *err naming the
 * check and field. */
int chk_runner_set(struct chk_runner *r, const struct chk_def *defs, size_t n, char **err);

/* A TTL check's update (PUT /v1/agent/check/pass|warn|fail, update): sets
 * its status and output (cut to CHK_OUTPUT_MAX) and resets its deadline;
 * WEFT_ENOENT for an unknown or non-TTL check. */
int chk_runner_ttl(struct chk_runner *r, const char *id, enum chk_status s,
		   const char *output, char **err);

/* Stops the loop, kills running scripts (their process groups) and reaps
 * them, joins the thread. Accepts NULL. Not from a callback. */
void chk_runner_free(struct chk_runner *r);

#endif
