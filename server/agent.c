#include "agent.h"
#include "duration.h"
#include "err.h"
#include "jsonx.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CHECKS 64

/* ---- check definitions (Consul's CheckType) ---- */

enum def_kind { D_STR, D_DUR, D_BOOL, D_INT, D_STRS, D_HEADER };

/* The fields of a check definition that are stored as its Definition. */
static const struct def_field {
	const char *name;
	enum def_kind kind;
} def_fields[] = {
	{ "Interval", D_DUR }, { "Timeout", D_DUR }, { "DeregisterCriticalServiceAfter", D_DUR },
	{ "HTTP", D_STR }, { "Header", D_HEADER }, { "Method", D_STR }, { "Body", D_STR },
	{ "DisableRedirects", D_BOOL }, { "TLSServerName", D_STR }, { "TLSSkipVerify", D_BOOL },
	{ "TCP", D_STR }, { "UDP", D_STR }, { "GRPC", D_STR }, { "GRPCUseTLS", D_BOOL },
	{ "H2PING", D_STR }, { "H2PingUseTLS", D_BOOL }, { "ScriptArgs", D_STRS },
	{ "DockerContainerID", D_STR }, { "Shell", D_STR }, { "AliasNode", D_STR },
	{ "AliasService", D_STR }, { "OSService", D_STR }, { "SuccessBeforePassing", D_INT },
	{ "FailuresBeforeWarning", D_INT }, { "FailuresBeforeCritical", D_INT },
	{ "OutputMaxSize", D_INT },
};

/* Which field makes a check of which type, in Consul's order of precedence. */
static const struct {
	const char *field, *type;
	int needs_interval;
} check_kinds[] = {
	{ "TTL", "ttl", 0 }, { "HTTP", "http", 1 }, { "TCP", "tcp", 1 }, { "UDP", "udp", 1 },
	{ "GRPC", "grpc", 1 }, { "H2PING", "h2ping", 1 }, { "DockerContainerID", "docker", 1 },
	{ "ScriptArgs", "script", 1 }, { "AliasService", "alias", 0 }, { "AliasNode", "alias", 0 },
	{ "OSService", "os_service", 1 },
};

static int present(json_t *obj, const char *name)
{
	json_t *v = jx_field(obj, name);

	if (v == NULL || json_is_null(v))
		return 0;
	if (json_is_string(v))
		return json_string_length(v) > 0;
	if (json_is_array(v))
		return json_array_size(v) > 0;
	return 1;
}

static int copy_def_field(json_t *in, const char *ctx, const struct def_field *f, json_t *def,
			  char **err)
{
	json_t *v = jx_field(in, f->name), *e, *arr;
	const char *s = NULL, *k;
	long long n = 0, ms = 0;
	int b = 0;
	char text[64], sub[300];

	if (v == NULL || json_is_null(v))
		return WEFT_OK;
	switch (f->kind) {
	case D_STR:
		if (jx_str(in, ctx, f->name, &s, CAT_TEXT_MAX, err) != WEFT_OK)
			return WEFT_EINVAL;
		if (s[0])
			json_object_set_new(def, f->name, json_string(s));
		break;
	case D_DUR:
		if (jx_duration_ms(in, ctx, f->name, &ms, err) != WEFT_OK)
			return WEFT_EINVAL;
		if (ms > 0) {
			duration_format(ms, text, sizeof(text));
			json_object_set_new(def, f->name, json_string(text));
		}
		break;
	case D_BOOL:
		if (jx_bool(in, ctx, f->name, &b, err) != WEFT_OK)
			return WEFT_EINVAL;
		json_object_set_new(def, f->name, json_boolean(b));
		break;
	case D_INT:
		if (jx_int(in, ctx, f->name, &n, 0, 1 << 30, err) != WEFT_OK)
			return WEFT_EINVAL;
		json_object_set_new(def, f->name, json_integer(n));
		break;
	case D_STRS:
		if (jx_str_array(in, ctx, f->name, &arr, CAT_TEXT_MAX, err) != WEFT_OK)
			return WEFT_EINVAL;
		json_object_set(def, f->name, arr);
		break;
	case D_HEADER:
		if (!json_is_object(v))
			return weft_errf(err, WEFT_EINVAL, "%s%sHeader: must be an object of string arrays",
					 ctx ? ctx : "", ctx ? "." : "");
		snprintf(sub, sizeof(sub), "%s%sHeader", ctx ? ctx : "", ctx ? "." : "");
		json_object_foreach(v, k, e) {
			json_t *list = NULL;
			if (jx_str_array(v, sub, k, &list, CAT_TEXT_MAX, err) != WEFT_OK)
				return WEFT_EINVAL;
		}
		json_object_set(def, f->name, v);
		break;
	}
	return WEFT_OK;
}

/* Turns an agent check definition into the catalog's check document:
 * {CheckID, Name, Status, Notes, ServiceID, TTL, Type, Definition}. */
static int normalise_check(json_t *in, const char *ctx, json_t **out, char **err)
{
	json_t *doc = NULL, *def = NULL, *args = NULL;
	const char *id = NULL, *cid = NULL, *name = NULL, *status = NULL, *notes = NULL,
		   *service_id = NULL, *type = NULL;
	long long ttl = 0, interval = 0;
	int rc = WEFT_EINVAL, needs_interval = 0;
	size_t i;

	if (!json_is_object(in))
		return weft_errf(err, WEFT_EINVAL, "%s: must be an object", ctx ? ctx : "body");
	if (jx_str(in, ctx, "ID", &id, CAT_NAME_MAX, err) != WEFT_OK ||
	    jx_str(in, ctx, "CheckID", &cid, CAT_NAME_MAX, err) != WEFT_OK ||
	    jx_str(in, ctx, "Name", &name, CAT_NAME_MAX, err) != WEFT_OK ||
	    jx_str(in, ctx, "Status", &status, 16, err) != WEFT_OK ||
	    jx_str(in, ctx, "Notes", &notes, CAT_TEXT_MAX, err) != WEFT_OK ||
	    jx_str(in, ctx, "ServiceID", &service_id, CAT_NAME_MAX, err) != WEFT_OK ||
	    jx_duration_ms(in, ctx, "TTL", &ttl, err) != WEFT_OK ||
	    jx_duration_ms(in, ctx, "Interval", &interval, err) != WEFT_OK ||
	    jx_str_array(in, ctx, "Args", &args, CAT_TEXT_MAX, err) != WEFT_OK)
		return WEFT_EINVAL;
	if (present(in, "Script"))
		return weft_errf(err, WEFT_EINVAL,
				 "%s%sScript: is no longer supported (as in Consul); use Args",
				 ctx ? ctx : "", ctx ? "." : "");
	def = json_object();
	for (i = 0; i < sizeof(def_fields) / sizeof(def_fields[0]); i++)
		if (copy_def_field(in, ctx, &def_fields[i], def, err) != WEFT_OK)
			goto out;
	if (args && json_array_size(args) && !json_object_get(def, "ScriptArgs"))
		json_object_set(def, "ScriptArgs", args);
	if (ttl > 0) {
		type = "ttl";
	} else {
		for (i = 1; i < sizeof(check_kinds) / sizeof(check_kinds[0]); i++) {
			if (json_object_get(def, check_kinds[i].field)) {
				type = check_kinds[i].type;
				needs_interval = check_kinds[i].needs_interval;
				break;
			}
		}
	}
	if (type == NULL) {
		rc = weft_errf(err, WEFT_EINVAL,
			       "%s%sTTL: a check needs one of TTL, HTTP, TCP, UDP, GRPC, H2PING, Args, "
			       "DockerContainerID, AliasService, AliasNode or OSService",
			       ctx ? ctx : "", ctx ? "." : "");
		goto out;
	}
	if (needs_interval && interval <= 0) {
		rc = weft_errf(err, WEFT_EINVAL, "%s%sInterval: is required for a %s check",
			       ctx ? ctx : "", ctx ? "." : "", type);
		goto out;
	}
	doc = json_pack("{s:s, s:s, s:O}", "Type", type, "Status", status ? status : "",
			"Definition", def);
	if (doc == NULL) {
		rc = weft_errf(err, WEFT_ENOMEM, "out of memory");
		goto out;
	}
	if (cid && cid[0])
		json_object_set_new(doc, "CheckID", json_string(cid));
	else if (id && id[0])
		json_object_set_new(doc, "CheckID", json_string(id));
	if (name)
		json_object_set_new(doc, "Name", json_string(name));
	if (notes)
		json_object_set_new(doc, "Notes", json_string(notes));
	if (service_id)
		json_object_set_new(doc, "ServiceID", json_string(service_id));
	if (ttl > 0)
		json_object_set(doc, "TTL", jx_field(in, "TTL"));
	*out = doc;
	doc = NULL;
	rc = WEFT_OK;
out:
	json_decref(def);
	json_decref(doc);
	return rc;
}

/* ---- service registration ---- */

void agent_service_reg_free(struct agent_service_reg *r)
{
	if (r == NULL)
		return;
	free(r->reg.checks);
	json_decref(r->reg.doc);
	json_decref(r->keep);
	free(r);
}

int agent_decode_service(json_t *doc, const char *node, const char *address,
			 struct agent_service_reg **out, char **err)
{
	struct agent_service_reg *r = calloc(1, sizeof(*r));
	json_t *check = NULL, *checks = NULL, *defs[MAX_CHECKS], *e;
	const char *name = NULL;
	char ctx[32], id[CAT_NAME_MAX + 64], cname[CAT_NAME_MAX + 32];
	size_t n = 0, i;
	int rc = WEFT_EINVAL;

	if (r == NULL)
		return weft_errf(err, WEFT_ENOMEM, "out of memory");
	r->keep = json_array();
	if (!json_is_object(doc)) {
		rc = weft_errf(err, WEFT_EINVAL, "body: must be a JSON object");
		goto out;
	}
	if (jx_req_str(doc, NULL, "Name", &name, CAT_NAME_MAX, err) != WEFT_OK)
		goto out;
	if (!name_valid(name, CAT_NAME_MAX)) {
		rc = weft_errf(err, WEFT_EINVAL,
			       "Name: \"%s\" is not a valid service name (letters, digits, '-', '_', '.')",
			       name);
		goto out;
	}
	if (jx_object(doc, NULL, "Check", &check, err) != WEFT_OK ||
	    jx_array(doc, NULL, "Checks", &checks, err) != WEFT_OK)
		goto out;
	/* The catalog's decoder reads the service from a copy where the agent's
	 * "Name" is the catalog's "Service". */
	r->reg.doc = json_copy(doc);
	if (r->reg.doc == NULL) {
		rc = weft_errf(err, WEFT_ENOMEM, "out of memory");
		goto out;
	}
	json_object_set_new(r->reg.doc, "Service", json_string(name));
	if (catalog_decode_service(r->reg.doc, NULL, &r->reg.svc, err) != WEFT_OK)
		goto out;
	r->reg.has_service = 1;
	r->reg.node = node;
	r->reg.address = address;
	r->reg.node_id = "";
	r->reg.skip_node_update = 1;

	if (check && json_object_size(check))
		defs[n++] = check;
	if (checks) {
		if (json_array_size(checks) + n > MAX_CHECKS) {
			rc = weft_errf(err, WEFT_EINVAL, "Checks: at most %d checks per service", MAX_CHECKS);
			goto out;
		}
		json_array_foreach(checks, i, e)
			defs[n++] = e;
	}
	r->reg.checks = calloc(n ? n : 1, sizeof(*r->reg.checks));
	if (r->reg.checks == NULL) {
		rc = weft_errf(err, WEFT_ENOMEM, "out of memory");
		goto out;
	}
	for (i = 0; i < n; i++) {
		json_t *norm = NULL;
		if (check && json_object_size(check) && i == 0)
			snprintf(ctx, sizeof(ctx), "Check");
		else
			snprintf(ctx, sizeof(ctx), "Checks[%zu]",
				 check && json_object_size(check) ? i - 1 : i);
		if (normalise_check(defs[i], ctx, &norm, err) != WEFT_OK)
			goto out;
		json_array_append_new(r->keep, norm);
		/* Consul's defaults: service:ID (service:ID:N for several) and a
		 * name naming the service; the check belongs to this service. */
		if (!json_object_get(norm, "CheckID")) {
			if (n == 1)
				snprintf(id, sizeof(id), "service:%s", r->reg.svc.id);
			else
				snprintf(id, sizeof(id), "service:%s:%zu", r->reg.svc.id, i + 1);
			json_object_set_new(norm, "CheckID", json_string(id));
		}
		if (!json_object_get(norm, "Name")) {
			snprintf(cname, sizeof(cname), "Service '%s' check", r->reg.svc.name);
			json_object_set_new(norm, "Name", json_string(cname));
		}
		json_object_set_new(norm, "ServiceID", json_string(r->reg.svc.id));
		if (catalog_decode_check(norm, ctx, &r->reg.checks[i], err) != WEFT_OK)
			goto out;
		r->reg.nchecks++;
	}
	*out = r;
	r = NULL;
	rc = WEFT_OK;
out:
	agent_service_reg_free(r);
	return rc;
}

/* A check re-registered without a Status keeps the status it has, so that a
 * service re-registering itself does not flap to critical. */
static void keep_existing_status(struct db *db, const char *node, struct cat_check *c, json_t *keep)
{
	struct db_stmt *st;

	if (c->status[0])
		return;
	st = db_prep(db, "SELECT status, output FROM checks WHERE node = ? AND check_id = ? AND type = ?");
	if (st == NULL)
		return;
	db_bind_text(st, 1, node);
	db_bind_text(st, 2, c->id);
	db_bind_text(st, 3, c->type);
	if (db_step(st) == DB_ROW) {
		json_t *s = json_string(db_col_text(st, 0)), *o = json_string(db_col_text(st, 1));
		if (s && o) {
			/* keep owns them for as long as c points at them */
			json_array_append(keep, s);
			json_array_append(keep, o);
			c->status = json_string_value(s);
			c->output = json_string_value(o);
		}
		json_decref(s);
		json_decref(o);
	}
	db_done(st);
}

static int in_checks(const struct cat_register *reg, const char *id)
{
	for (size_t i = 0; i < reg->nchecks; i++)
		if (strcmp(reg->checks[i].id, id) == 0)
			return 1;
	return 0;
}

/* Removes the service's checks that the new definition does not name
 * (maintenance mode is not a definition's to remove). */
static int drop_other_checks(struct db *db, const struct cat_register *reg,
			     struct store_changes *ch, char **err)
{
	struct db_stmt *st = db_prep(db, "SELECT check_id FROM checks WHERE node = ? AND service_id = ?");
	json_t *drop = json_array(), *e;
	size_t i;
	int rc = WEFT_OK;

	if (st == NULL) {
		json_decref(drop);
		return weft_errf(err, WEFT_EIO, "store: %s", db_errmsg(db));
	}
	db_bind_text(st, 1, reg->node);
	db_bind_text(st, 2, reg->svc.id);
	while (db_step(st) == DB_ROW) {
		const char *id = db_col_text(st, 0);
		if (!in_checks(reg, id) && strncmp(id, AGENT_SERVICE_MAINT_PREFIX,
						   strlen(AGENT_SERVICE_MAINT_PREFIX)) != 0)
			json_array_append_new(drop, json_string(id));
	}
	db_done(st);
	json_array_foreach(drop, i, e) {
		st = db_prep(db, "DELETE FROM checks WHERE node = ? AND check_id = ?");
		if (st == NULL) {
			rc = weft_errf(err, WEFT_EIO, "store: %s", db_errmsg(db));
			break;
		}
		db_bind_text(st, 1, reg->node);
		db_bind_text(st, 2, json_string_value(e));
		if (db_step(st) != DB_DONE)
			rc = weft_errf(err, WEFT_EIO, "store: cannot delete check %s: %s",
				       json_string_value(e), db_errmsg(db));
		db_done(st);
		if (rc != WEFT_OK)
			break;
	}
	if (json_array_size(drop)) {
		changes_add(ch, "checks");
		changes_add(ch, "node:%s", reg->node);
		changes_add(ch, "svc:%s", reg->svc.name);
	}
	json_decref(drop);
	return rc;
}

int agent_apply_service_register(struct db *db, uint64_t index, struct store_write *w,
				 struct store_changes *ch)
{
	struct agent_service_reg *a = w->arg;
	struct store_write inner = { .arg = &a->reg };
	int rc;

	for (size_t i = 0; i < a->reg.nchecks; i++)
		keep_existing_status(db, a->reg.node, &a->reg.checks[i], a->keep);
	rc = catalog_apply_register(db, index, &inner, ch);
	if (rc != WEFT_OK) {
		w->err = inner.err;
		return rc;
	}
	json_decref(inner.result);
	if (a->replace_checks)
		rc = drop_other_checks(db, &a->reg, ch, &w->err);
	return rc;
}

/* ---- check registration ---- */

void agent_check_reg_free(struct agent_check_reg *r)
{
	if (r == NULL)
		return;
	json_decref(r->keep);
	json_decref(r->held);
	free(r);
}

int agent_decode_check(json_t *doc, const char *node, struct agent_check_reg **out, char **err)
{
	struct agent_check_reg *r = calloc(1, sizeof(*r));
	const char *name = NULL;
	int rc = WEFT_EINVAL;

	if (r == NULL)
		return weft_errf(err, WEFT_ENOMEM, "out of memory");
	r->node = node;
	r->held = json_array();
	if (!json_is_object(doc)) {
		rc = weft_errf(err, WEFT_EINVAL, "body: must be a JSON object");
		goto out;
	}
	if (jx_req_str(doc, NULL, "Name", &name, CAT_NAME_MAX, err) != WEFT_OK)
		goto out;
	if (normalise_check(doc, NULL, &r->keep, err) != WEFT_OK)
		goto out;
	if (catalog_decode_check(r->keep, NULL, &r->check, err) != WEFT_OK)
		goto out;
	*out = r;
	r = NULL;
	rc = WEFT_OK;
out:
	agent_check_reg_free(r);
	return rc;
}

int agent_apply_check_register(struct db *db, uint64_t index, struct store_write *w,
			       struct store_changes *ch)
{
	struct agent_check_reg *r = w->arg;

	keep_existing_status(db, r->node, &r->check, r->held);
	return catalog_put_check(db, index, r->node, &r->check, now_wall_ms(), ch, &w->err);
}

/* ---- changes to existing objects ---- */

struct agent_op *agent_op_new(const char *node)
{
	struct agent_op *op = calloc(1, sizeof(*op));

	if (op == NULL)
		return NULL;
	op->node = strdup(node);
	if (op->node == NULL) {
		free(op);
		return NULL;
	}
	return op;
}

void agent_op_free(struct agent_op *op)
{
	if (op == NULL)
		return;
	free(op->node);
	free(op->service_id);
	free(op->check_id);
	free(op->status);
	free(op->output);
	free(op->reason);
	free(op);
}

char *agent_output_dup(const char *s)
{
	size_t n = strlen(s);
	json_t *probe = json_string(s);   /* NULL unless valid UTF-8 */
	char *out;

	if (probe == NULL)
		return NULL;
	json_decref(probe);
	if (n > AGENT_OUTPUT_MAX) {
		n = AGENT_OUTPUT_MAX;
		while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
			n--;   /* do not split a character */
	}
	out = malloc(n + 1);
	if (out == NULL)
		return NULL;
	memcpy(out, s, n);
	out[n] = '\0';
	return out;
}

int agent_apply_deregister(struct db *db, uint64_t index, struct store_write *w,
			   struct store_changes *ch)
{
	struct agent_op *op = w->arg;
	struct store_write inner = { .arg = &op->dereg };
	int rc;

	op->dereg.node = op->node;
	op->dereg.service_id = op->service_id;
	op->dereg.check_id = op->service_id ? NULL : op->check_id;
	rc = catalog_apply_deregister(db, index, &inner, ch);
	w->err = inner.err;
	return rc;
}

int agent_apply_check_update(struct db *db, uint64_t index, struct store_write *w,
			     struct store_changes *ch)
{
	struct agent_op *op = w->arg;

	return catalog_set_check_status(db, index, op->node, op->check_id, op->status,
					op->output ? op->output : "", now_wall_ms(), ch, &w->err);
}

int agent_apply_maintenance(struct db *db, uint64_t index, struct store_write *w,
			    struct store_changes *ch)
{
	struct agent_op *op = w->arg;
	char id[CAT_NAME_MAX + 32];
	struct cat_check c = {
		.status = "critical", .output = "", .type = "maintenance", .service_id = "",
	};

	if (op->service_id) {
		snprintf(id, sizeof(id), "%s%s", AGENT_SERVICE_MAINT_PREFIX, op->service_id);
		c.name = HEALTH_SERVICE_MAINT_NAME;
		c.service_id = op->service_id;
		c.notes = op->reason && op->reason[0] ? op->reason : HEALTH_SERVICE_MAINT_NOTES;
	} else {
		snprintf(id, sizeof(id), "%s", AGENT_NODE_MAINT_ID);
		c.name = HEALTH_NODE_MAINT_NAME;
		c.notes = op->reason && op->reason[0] ? op->reason : HEALTH_NODE_MAINT_NOTES;
	}
	c.id = id;
	if (op->enable)
		return catalog_put_check(db, index, op->node, &c, now_wall_ms(), ch, &w->err);
	{
		struct cat_deregister d = { .node = op->node, .check_id = id };
		struct store_write inner = { .arg = &d };
		int rc = catalog_apply_deregister(db, index, &inner, ch);
		w->err = inner.err;
		return rc;
	}
}

/* ---- lookups ---- */

int agent_check_lookup(struct db *db, const char *node, const char *check_id,
		       struct agent_check_info *out)
{
	struct db_stmt *st = db_prep(db, "SELECT service_id, service_name, type FROM checks"
					 " WHERE node = ? AND check_id = ?");
	int found = 0;

	if (st == NULL)
		return 0;
	db_bind_text(st, 1, node);
	db_bind_text(st, 2, check_id);
	if (db_step(st) == DB_ROW) {
		found = 1;
		snprintf(out->service_id, sizeof(out->service_id), "%s", db_col_text(st, 0));
		snprintf(out->service_name, sizeof(out->service_name), "%s", db_col_text(st, 1));
		snprintf(out->type, sizeof(out->type), "%s", db_col_text(st, 2));
	}
	db_done(st);
	return found;
}
