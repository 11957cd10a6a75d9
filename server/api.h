/* Helpers shared by the API modules. */
#ifndef WEFT_API_H
#define WEFT_API_H

#include <jansson.h>

struct req;
struct db;

/* 0 when ?dc= is absent or ours; otherwise replies 400 and returns -1. */
int api_check_dc(struct req *r);
/* Applies ?filter= to the items of arr (an array, or an object's values);
 * returns arr, or NULL after replying 400 for a bad expression. */
json_t *api_filter(struct req *r, json_t *arr);
/* Opens the read snapshot, or replies 500 and returns NULL. */
struct db *api_read_begin(struct req *r);
/* ?mesh= (default "default"), or NULL after replying 400 for a bad name. */
const char *api_mesh_param(struct req *r);
/* Replies with a decode or apply error message for code. */
int api_bad(struct req *r, int code, char *err);

#endif
