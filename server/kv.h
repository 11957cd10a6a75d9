/* The key/value store, with Consul's semantics: check-and-set on the modify
 * index, locks held by sessions (acquire/release, LockIndex, lock-delay),
 * prefix listings and deletes.
 *
 * Every write of a key publishes "kv:P" for each prefix P of the key ("" and
 * the key included) and "kvx:KEY": a single-key read watches "kvx:KEY", a
 * listing of PREFIX watches "kv:PREFIX", so a blocking query wakes for
 * changes under what it reads and for nothing else. */
#ifndef WEFT_KV_H
#define WEFT_KV_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

#define KV_KEY_MAX 512                 /* bytes */
#define KV_VALUE_MAX (512 * 1024)      /* bytes, Consul's kv_max_value_size */
#define KV_MAX_LOCK_DELAY_MS 60000     /* Consul's MaxLockDelay */

enum kv_op {
	KV_SET,          /* plain write; keeps the lock, if any */
	KV_CAS,          /* write if ModifyIndex == cas (0: only if absent) */
	KV_LOCK,         /* write and acquire with session */
	KV_UNLOCK,       /* write and release, by the holder only */
	KV_DELETE,
	KV_DELETE_CAS,   /* delete if ModifyIndex == cas */
	KV_DELETE_TREE,  /* delete every key under the prefix key */
};

/* The argument of kv_apply. */
struct kv_write {
	enum kv_op op;
	char *key;
	unsigned char *value;   /* NULL: no value (Consul's null) */
	size_t value_len;
	int64_t flags;
	uint64_t cas;
	char *session;          /* KV_LOCK, KV_UNLOCK */
	int64_t now_ms;         /* wall clock when submitted, for lock-delay */
};

/* Copies key and value (value_len 0 stores no value). */
struct kv_write *kv_write_new(enum kv_op op, const char *key, const void *value,
			      size_t value_len);
void kv_write_free(struct kv_write *k);

/* 0, or WEFT_EINVAL / WEFT_ETOOBIG with *err naming what is wrong. */
int kv_check_key(const char *key, char **err);

/* store_write apply: w->arg is a struct kv_write. w->result is `true`, or
 * for CAS, lock and unlock operations whether it happened. */
int kv_apply(struct db *db, uint64_t index, struct store_write *w, struct store_changes *ch);

/* Inside another apply: releases (or deletes, delete_keys) every key held
 * by session and starts their lock-delay window of lock_delay_ms. */
int kv_session_invalidated(struct db *db, uint64_t index, const char *session, int delete_keys,
			   int64_t lock_delay_ms, int64_t now_ms, struct store_changes *ch,
			   char **err);

/* Reads (on a read connection). Each returns a new array, maybe empty. */
json_t *kv_get(struct db *db, const char *key);
json_t *kv_list(struct db *db, const char *prefix);
json_t *kv_keys(struct db *db, const char *prefix, const char *separator);
/* 1 and an allocated copy of the value (maybe empty) when key exists. */
int kv_get_raw(struct db *db, const char *key, char **out, size_t *len);

#endif
