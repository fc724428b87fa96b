/* Comma-separated lists ("a, b,c"): the one splitter of the configs, the options and
 * libkd3's KDC list. */
#ifndef KD3_ITEMS_H
#define KD3_ITEMS_H

#include <stddef.h>

/* The function told each item: s[n], spaces and tabs around it trimmed (not NUL
 * terminated). A kd3_err other than KD3_OK stops the split and is returned. */
typedef int (*kd3_item_fn)(void *ctx, const char *s, size_t n, char *why, size_t len);

/* Calls item() for each item of v, in order. An empty item is KD3_E_CONFIG, with
 * why[len] quoting v. */
int kd3_split_items(const char *v, kd3_item_fn item, void *ctx, char *why, size_t len);

#endif
