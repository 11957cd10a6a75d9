/* SQLite implementation of store.h. */
#include "store.h"
#include "err.h"
#include "log.h"
#include "schema.h"
#include "util.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define STMT_CACHE 64
#define BATCH_MAX 4096

struct db_stmt {
	const char *sql;        /* the literal it was prepared from: the cache key */
	sqlite3_stmt *st;
	struct db *db;
};

struct db {
	sqlite3 *h;
	struct db_stmt cache[STMT_CACHE];
	size_t ncache;
	struct db *next_reader;  /* the store's list of reader connections */
};

struct change_topic {
	uint64_t index;
	char name[];
};

struct store_changes {
	struct change_topic **topics;
	size_t n, cap;
	uint64_t index;
};

struct store {
	char *path;
	struct db *writer;
	pthread_t writer_thread;
	pthread_mutex_t lock;
	pthread_cond_t queue_cond;
	pthread_cond_t sync_cond;
	struct store_write *queue_head, *queue_tail;
	int stopping;
	_Atomic uint64_t last_index;
	pthread_key_t reader_key;
	pthread_mutex_t readers_lock;
	struct db *readers;
	void (*publish)(void *, const char *const *, const uint64_t *, size_t);
	void *publish_ctx;
	int64_t (*now_ms)(void);
	/* stats, under lock */
	struct store_stats stats;
};

const double store_commit_bucket_bounds_s[12] = {
	0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1e300,
};

/* ---- connections and statements ---- */

struct db_stmt *db_prep(struct db *db, const char *sql)
{
	struct db_stmt *slot;

	for (size_t i = 0; i < db->ncache; i++)
		if (db->cache[i].sql == sql)
			return &db->cache[i];
	if (db->ncache == STMT_CACHE) {
		log_errorx("store", "statement cache full sql=\"%.60s\"", sql);
		return NULL;
	}
	slot = &db->cache[db->ncache];
	if (sqlite3_prepare_v3(db->h, sql, -1, SQLITE_PREPARE_PERSISTENT, &slot->st, NULL) != SQLITE_OK) {
		log_errorx("store", "prepare failed sql=\"%.80s\" error=\"%s\"", sql, sqlite3_errmsg(db->h));
		return NULL;
	}
	slot->sql = sql;
	slot->db = db;
	db->ncache++;
	return slot;
}

void db_bind_text(struct db_stmt *st, int idx, const char *s)
{
	if (s)
		sqlite3_bind_text(st->st, idx, s, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(st->st, idx);
}

void db_bind_int(struct db_stmt *st, int idx, int64_t v)
{
	sqlite3_bind_int64(st->st, idx, v);
}

void db_bind_blob(struct db_stmt *st, int idx, const void *p, size_t n)
{
	if (p)
		sqlite3_bind_blob64(st->st, idx, p, n, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(st->st, idx);
}

int db_step(struct db_stmt *st)
{
	int rc = sqlite3_step(st->st);

	if (rc == SQLITE_ROW)
		return DB_ROW;
	if (rc == SQLITE_DONE)
		return DB_DONE;
	log_warnx("store", "step failed sql=\"%.80s\" error=\"%s\"", st->sql,
		  sqlite3_errmsg(st->db->h));
	return WEFT_EIO;
}

const char *db_col_text(struct db_stmt *st, int idx)
{
	return (const char *)sqlite3_column_text(st->st, idx);
}

int64_t db_col_int(struct db_stmt *st, int idx)
{
	return sqlite3_column_int64(st->st, idx);
}

const void *db_col_blob(struct db_stmt *st, int idx, size_t *len)
{
	const void *p = sqlite3_column_blob(st->st, idx);

	*len = (size_t)sqlite3_column_bytes(st->st, idx);
	return p;
}

int db_col_is_null(struct db_stmt *st, int idx)
{
	return sqlite3_column_type(st->st, idx) == SQLITE_NULL;
}

void db_done(struct db_stmt *st)
{
	if (st == NULL)
		return;
	sqlite3_reset(st->st);
	sqlite3_clear_bindings(st->st);
}

int db_exec(struct db *db, const char *sql, char **err)
{
	char *msg = NULL;

	if (sqlite3_exec(db->h, sql, NULL, NULL, &msg) != SQLITE_OK) {
		weft_errf(err, WEFT_EIO, "%s", msg ? msg : sqlite3_errmsg(db->h));
		sqlite3_free(msg);
		return WEFT_EIO;
	}
	return WEFT_OK;
}

int64_t db_changes(struct db *db)
{
	return sqlite3_changes64(db->h);
}

const char *db_errmsg(struct db *db)
{
	return sqlite3_errmsg(db->h);
}

static struct db *db_connect(const char *path, int readonly, char **err)
{
	struct db *db = calloc(1, sizeof(*db));
	int flags = (readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) |
		    SQLITE_OPEN_NOMUTEX;

	if (db == NULL) {
		weft_errf(err, WEFT_ENOMEM, "store: out of memory");
		return NULL;
	}
	if (sqlite3_open_v2(path, &db->h, flags, NULL) != SQLITE_OK) {
		weft_errf(err, WEFT_EIO, "store: cannot open %s: %s", path,
			  db->h ? sqlite3_errmsg(db->h) : "out of memory");
		sqlite3_close(db->h);
		free(db);
		return NULL;
	}
	sqlite3_busy_timeout(db->h, 5000);
	return db;
}

static void db_disconnect(struct db *db)
{
	if (db == NULL)
		return;
	for (size_t i = 0; i < db->ncache; i++)
		sqlite3_finalize(db->cache[i].st);
	sqlite3_close(db->h);
	free(db);
}

/* ---- changes ---- */

void changes_add(struct store_changes *ch, const char *fmt, ...)
{
	struct change_topic *t;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if (ch->n == ch->cap) {
		size_t nc = ch->cap ? ch->cap * 2 : 16;
		struct change_topic **p = realloc(ch->topics, nc * sizeof(*p));
		if (p == NULL)
			return;
		ch->topics = p;
		ch->cap = nc;
	}
	t = malloc(sizeof(*t) + (size_t)n + 1);
	if (t == NULL)
		return;
	t->index = ch->index;
	va_start(ap, fmt);
	vsnprintf(t->name, (size_t)n + 1, fmt, ap);
	va_end(ap);
	ch->topics[ch->n++] = t;
}

void changes_add_prefixes(struct store_changes *ch, const char *tag, const char *key)
{
	size_t len = strlen(key);

	for (size_t i = 0; i <= len; i++)
		changes_add(ch, "%s%.*s", tag, (int)i, key);
}

static void changes_truncate(struct store_changes *ch, size_t n)
{
	while (ch->n > n)
		free(ch->topics[--ch->n]);
}

/* ---- the writer ---- */

static int64_t real_now_ms(void)
{
	return now_wall_ms();
}

static void stats_commit(struct store *s, uint64_t us, size_t writes)
{
	size_t b = 0;

	while (b < 11 && (double)us / 1e6 > store_commit_bucket_bounds_s[b])
		b++;
	pthread_mutex_lock(&s->lock);
	s->stats.commits++;
	s->stats.writes += writes;
	s->stats.commit_us_total += us;
	s->stats.commit_us_buckets[b]++;
	pthread_mutex_unlock(&s->lock);
}

static void run_batch(struct store *s, struct store_write *batch)
{
	struct store_changes ch = { 0 };
	uint64_t idx = atomic_load(&s->last_index), first_idx = idx;
	struct store_write *w;
	struct timespec t0, t1;
	size_t nwrites = 0;
	char *e = NULL;
	int rc;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	rc = db_exec(s->writer, "BEGIN IMMEDIATE", &e);
	for (w = batch; w; w = w->_next) {
		size_t mark = ch.n;

		nwrites++;
		if (rc != WEFT_OK) {
			w->status = weft_errf(&w->err, WEFT_EIO, "store: cannot begin a transaction: %s",
					      e ? e : "?");
			continue;
		}
		if (db_exec(s->writer, "SAVEPOINT w", &w->err) != WEFT_OK) {
			w->status = WEFT_EIO;
			continue;
		}
		w->index = ch.index = idx + 1;
		w->status = w->apply(s->writer, w->index, w, &ch);
		if (w->status == WEFT_OK) {
			idx++;
			db_exec(s->writer, "RELEASE w", NULL);
		} else {
			db_exec(s->writer, "ROLLBACK TO w", NULL);
			db_exec(s->writer, "RELEASE w", NULL);
			changes_truncate(&ch, mark);
			w->index = idx;
			if (w->err == NULL)
				weft_errf(&w->err, w->status, "%s", weft_strerror(w->status));
		}
	}
	if (rc == WEFT_OK) {
		struct db_stmt *st = db_prep(s->writer, "UPDATE meta SET value = ? WHERE key = 'index'");
		char num[32];

		snprintf(num, sizeof(num), "%llu", (unsigned long long)idx);
		if (st) {
			db_bind_text(st, 1, num);
			db_step(st);
			db_done(st);
		}
		if (db_exec(s->writer, "COMMIT", &e) != WEFT_OK) {
			db_exec(s->writer, "ROLLBACK", NULL);
			log_errorx("store", "commit failed writes=%zu error=\"%s\"", nwrites, e);
			for (w = batch; w; w = w->_next) {
				if (w->status == WEFT_OK) {
					w->status = weft_errf(&w->err, WEFT_EIO,
							      "store: commit failed: %s", e);
					json_decref(w->result);
					w->result = NULL;
				}
			}
			changes_truncate(&ch, 0);
			idx = first_idx;
		}
	}
	free(e);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	stats_commit(s, (uint64_t)((t1.tv_sec - t0.tv_sec) * 1000000 + (t1.tv_nsec - t0.tv_nsec) / 1000),
		     nwrites);
	atomic_store(&s->last_index, idx);

	/* Durable: wake watchers, then answer the writers. */
	if (ch.n > 0 && s->publish) {
		const char **names = malloc(ch.n * sizeof(*names));
		uint64_t *idxs = malloc(ch.n * sizeof(*idxs));
		if (names && idxs) {
			for (size_t i = 0; i < ch.n; i++) {
				names[i] = ch.topics[i]->name;
				idxs[i] = ch.topics[i]->index;
			}
			s->publish(s->publish_ctx, names, idxs, ch.n);
		}
		free(names);
		free(idxs);
	}
	changes_truncate(&ch, 0);
	free(ch.topics);
	while (batch) {
		w = batch;
		batch = w->_next;
		w->_next = NULL;
		w->done(w);
	}
}

static void *writer_main(void *arg)
{
	struct store *s = arg;

	for (;;) {
		struct store_write *batch, *w;
		size_t n = 0;

		pthread_mutex_lock(&s->lock);
		while (s->queue_head == NULL && !s->stopping)
			pthread_cond_wait(&s->queue_cond, &s->lock);
		if (s->queue_head == NULL && s->stopping) {
			pthread_mutex_unlock(&s->lock);
			break;
		}
		/* Take up to BATCH_MAX writes: they share one commit. */
		batch = s->queue_head;
		for (w = batch; w && ++n < BATCH_MAX; w = w->_next)
			;
		if (w) {
			s->queue_head = w->_next;
			w->_next = NULL;
		} else {
			s->queue_head = NULL;
		}
		if (s->queue_head == NULL)
			s->queue_tail = NULL;
		pthread_mutex_unlock(&s->lock);
		run_batch(s, batch);
	}
	return NULL;
}

void store_submit(struct store *s, struct store_write *w)
{
	w->status = WEFT_OK;
	w->err = NULL;
	w->index = 0;
	w->result = NULL;
	w->_next = NULL;
	pthread_mutex_lock(&s->lock);
	if (s->stopping) {
		pthread_mutex_unlock(&s->lock);
		w->status = weft_errf(&w->err, WEFT_ESHUTDOWN, "store: shutting down");
		w->done(w);
		return;
	}
	if (s->queue_tail)
		s->queue_tail->_next = w;
	else
		s->queue_head = w;
	s->queue_tail = w;
	pthread_cond_signal(&s->queue_cond);
	pthread_mutex_unlock(&s->lock);
}

struct sync_wait {
	struct store *s;
	int finished;
};

static void sync_done(struct store_write *w)
{
	struct sync_wait *sw = w->done_arg;

	pthread_mutex_lock(&sw->s->lock);
	sw->finished = 1;
	pthread_cond_broadcast(&sw->s->sync_cond);
	pthread_mutex_unlock(&sw->s->lock);
}

int store_write_sync(struct store *s, struct store_write *w)
{
	struct sync_wait sw = { .s = s, .finished = 0 };

	w->done = sync_done;
	w->done_arg = &sw;
	store_submit(s, w);
	pthread_mutex_lock(&s->lock);
	while (!sw.finished)
		pthread_cond_wait(&s->sync_cond, &s->lock);
	pthread_mutex_unlock(&s->lock);
	return w->status;
}

/* ---- readers ---- */

static void reader_forget(void *p)
{
	(void)p;  /* connections are closed by store_close, not at thread exit */
}

struct db *store_read_begin(struct store *s)
{
	struct db *db = pthread_getspecific(s->reader_key);

	if (db == NULL) {
		char *e = NULL;
		db = db_connect(s->path, 1, &e);
		if (db == NULL) {
			log_errorx("store", "reader open failed error=\"%s\"", e);
			free(e);
			return NULL;
		}
		pthread_setspecific(s->reader_key, db);
		pthread_mutex_lock(&s->readers_lock);
		db->next_reader = s->readers;
		s->readers = db;
		pthread_mutex_unlock(&s->readers_lock);
	}
	/* A snapshot left open by a caller would pin this thread to old data. */
	if (!sqlite3_get_autocommit(db->h)) {
		log_warnx("store", "read transaction left open; closing it");
		db_exec(db, "COMMIT", NULL);
	}
	db_exec(db, "BEGIN", NULL);
	return db;
}

void store_read_end(struct db *db)
{
	if (db)
		db_exec(db, "COMMIT", NULL);
}

/* ---- open and close ---- */

static int load_index(struct store *s, char **err)
{
	struct db_stmt *st = db_prep(s->writer, "SELECT value FROM meta WHERE key = 'index'");
	int rc = WEFT_EIO;

	if (st && db_step(st) == DB_ROW) {
		atomic_store(&s->last_index, strtoull(db_col_text(st, 0), NULL, 10));
		rc = WEFT_OK;
	}
	db_done(st);
	if (rc != WEFT_OK)
		weft_errf(err, rc, "store: cannot read the modify index from %s", s->path);
	return rc;
}

int store_open(struct store **out, const struct store_opts *opts, char **err)
{
	struct store *s = calloc(1, sizeof(*s));
	pthread_condattr_t ca;
	int rc;

	if (s == NULL)
		return weft_errf(err, WEFT_ENOMEM, "store: out of memory");
	s->path = strdup(opts->path);
	s->publish = opts->publish;
	s->publish_ctx = opts->publish_ctx;
	s->now_ms = opts->now_ms ? opts->now_ms : real_now_ms;
	pthread_mutex_init(&s->lock, NULL);
	pthread_mutex_init(&s->readers_lock, NULL);
	pthread_cond_init(&s->queue_cond, NULL);
	pthread_condattr_init(&ca);
	pthread_cond_init(&s->sync_cond, &ca);
	pthread_condattr_destroy(&ca);
	pthread_key_create(&s->reader_key, reader_forget);

	s->writer = db_connect(s->path, 0, err);
	if (s->writer == NULL) {
		rc = WEFT_EIO;
		goto fail;
	}
	/* WAL lets readers run beside the writer; FULL makes each commit durable
	 * before it is acknowledged. */
	rc = db_exec(s->writer,
		     "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;"
		     "PRAGMA wal_autocheckpoint=4000;", err);
	if (rc != WEFT_OK)
		goto fail;
	chmod(s->path, 0600);
	rc = schema_migrate(s->writer, err);
	if (rc != WEFT_OK)
		goto fail;
	rc = load_index(s, err);
	if (rc != WEFT_OK)
		goto fail;
	if (pthread_create(&s->writer_thread, NULL, writer_main, s) != 0) {
		rc = weft_errf(err, WEFT_EIO, "store: cannot start the writer thread");
		goto fail;
	}
	log_info("store", "opened path=%s index=%llu schema=%d", s->path,
		 (unsigned long long)atomic_load(&s->last_index), schema_version_latest());
	*out = s;
	return WEFT_OK;
fail:
	db_disconnect(s->writer);
	free(s->path);
	free(s);
	return rc;
}

void store_set_publisher(struct store *s,
			 void (*publish)(void *, const char *const *, const uint64_t *, size_t),
			 void *ctx)
{
	pthread_mutex_lock(&s->lock);
	s->publish = publish;
	s->publish_ctx = ctx;
	pthread_mutex_unlock(&s->lock);
}

void store_close(struct store *s)
{
	struct db *r, *next;

	if (s == NULL)
		return;
	pthread_mutex_lock(&s->lock);
	s->stopping = 1;
	pthread_cond_signal(&s->queue_cond);
	pthread_mutex_unlock(&s->lock);
	pthread_join(s->writer_thread, NULL);
	for (r = s->readers; r; r = next) {
		next = r->next_reader;
		db_disconnect(r);
	}
	db_exec(s->writer, "PRAGMA wal_checkpoint(TRUNCATE)", NULL);
	db_disconnect(s->writer);
	pthread_key_delete(s->reader_key);
	log_info("store", "closed path=%s index=%llu commits=%llu writes=%llu commit_ms_avg=%.3f",
		 s->path, (unsigned long long)atomic_load(&s->last_index),
		 (unsigned long long)s->stats.commits, (unsigned long long)s->stats.writes,
		 s->stats.commits ? (double)s->stats.commit_us_total / 1000.0 / (double)s->stats.commits : 0.0);
	free(s->path);
	pthread_cond_destroy(&s->queue_cond);
	pthread_cond_destroy(&s->sync_cond);
	pthread_mutex_destroy(&s->lock);
	pthread_mutex_destroy(&s->readers_lock);
	free(s);
}

uint64_t store_last_index(struct store *s)
{
	return atomic_load(&s->last_index);
}

int64_t store_now_ms(struct store *s)
{
	return s->now_ms();
}

void store_stats(struct store *s, struct store_stats *out)
{
	struct stat sb;
	char wal[4200];

	pthread_mutex_lock(&s->lock);
	*out = s->stats;
	pthread_mutex_unlock(&s->lock);
	out->file_bytes = 0;
	if (stat(s->path, &sb) == 0)
		out->file_bytes += sb.st_size;
	snprintf(wal, sizeof(wal), "%s-wal", s->path);
	if (stat(wal, &sb) == 0)
		out->file_bytes += sb.st_size;
}
