/* The store: durable state behind a narrow interface.
 *
 * Callers see connections (struct db), prepared statements written in the
 * SQL subset that SQLite and PostgreSQL share ("?" placeholders, ON CONFLICT
 * upserts), and one write path: a write is a function run by the store's
 * single writer inside a transaction, acknowledged only once its commit is
 * durable. Writes that arrive together share one commit (group commit); each
 * still gets its own modify index and rolls back alone if it fails.
 *
 * SQLite (WAL, synchronous=FULL) is the implementation today; a PostgreSQL
 * one implements the same functions (see docs/architecture.md). */
#ifndef WEFT_STORE_H
#define WEFT_STORE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct store;
struct db;
struct db_stmt;
struct store_changes;

enum { DB_DONE = 0, DB_ROW = 1 };   /* db_step; negative is an error */

/* Prepared once per connection and cached: sql must be a string literal. */
struct db_stmt *db_prep(struct db *db, const char *sql);
void db_bind_text(struct db_stmt *st, int idx, const char *s);  /* NULL binds NULL */
void db_bind_int(struct db_stmt *st, int idx, int64_t v);
void db_bind_blob(struct db_stmt *st, int idx, const void *p, size_t n);
int db_step(struct db_stmt *st);
const char *db_col_text(struct db_stmt *st, int idx);           /* NULL for NULL */
int64_t db_col_int(struct db_stmt *st, int idx);
const void *db_col_blob(struct db_stmt *st, int idx, size_t *len);
int db_col_is_null(struct db_stmt *st, int idx);
/* Resets the statement for reuse; call when done with it. */
void db_done(struct db_stmt *st);
/* Runs statements with no result (schema, pragmas). */
int db_exec(struct db *db, const char *sql, char **err);
/* Rows changed by the last statement on this connection. */
int64_t db_changes(struct db *db);
const char *db_errmsg(struct db *db);

/* What a write touched: topics for the hub (see hub.h). */
void changes_add(struct store_changes *ch, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Adds tag+p for every prefix p of key, "" and key included (KV trees). */
void changes_add_prefixes(struct store_changes *ch, const char *tag, const char *key);

/* Runs inside the writer's transaction. Returns WEFT_OK or an error code with
 * *err set; on error everything it did is rolled back. It may set w->result. */
struct store_write;
typedef int (*store_apply_fn)(struct db *db, uint64_t index, struct store_write *w,
			      struct store_changes *ch);

struct store_write {
	store_apply_fn apply;
	void *arg;
	/* Called on the writer thread once the outcome is durable (or failed). */
	void (*done)(struct store_write *w);
	void *done_arg;
	/* Outcome. */
	int status;
	char *err;
	uint64_t index;
	json_t *result;     /* optional response body set by apply */
	/* private */
	struct store_write *_next;
};

struct store_opts {
	const char *path;   /* the SQLite file */
	/* Receives the topics of each commit once it is durable. */
	void (*publish)(void *ctx, const char *const *topics, const uint64_t *indexes, size_t n);
	void *publish_ctx;
	int64_t (*now_ms)(void);  /* wall clock, for tests; NULL for the real one */
};

int store_open(struct store **out, const struct store_opts *opts, char **err);
/* Finishes queued writes, then closes every connection. */
void store_close(struct store *s);
void store_set_publisher(struct store *s,
			 void (*publish)(void *, const char *const *, const uint64_t *, size_t),
			 void *ctx);

/* Queues a write; w->done runs later on the writer thread. */
void store_submit(struct store *s, struct store_write *w);
/* Queues a write and waits for it; returns w->status. */
int store_write_sync(struct store *s, struct store_write *w);

/* The calling thread's read connection inside a read transaction (a
 * consistent snapshot until store_read_end). */
struct db *store_read_begin(struct store *s);
void store_read_end(struct db *db);

uint64_t store_last_index(struct store *s);
int64_t store_now_ms(struct store *s);

struct store_stats {
	uint64_t commits;
	uint64_t writes;
	uint64_t commit_us_total;
	uint64_t commit_us_buckets[12]; /* <=100us, 250us, 500us, 1ms, 2.5, 5, 10, 25, 50, 100, 250ms, +Inf */
	int64_t file_bytes;
};
void store_stats(struct store *s, struct store_stats *out);
extern const double store_commit_bucket_bounds_s[12];

#endif
