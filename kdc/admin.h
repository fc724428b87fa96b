/* kdc subcommands. Each takes the parsed options, prints one line on success (list
 * prints its table), reports a failure as one line on stderr, and returns a kd3_err:
 * KD3_E_USAGE for a bad argument, other codes for runtime failures. */
#ifndef KDC_ADMIN_H
#define KDC_ADMIN_H

#include "options.h"

int kdc_cmd_init(kdc_opts *o);
int kdc_cmd_add(kdc_opts *o);
int kdc_cmd_rotate(kdc_opts *o);
int kdc_cmd_retire(kdc_opts *o);
int kdc_cmd_remove(kdc_opts *o);
int kdc_cmd_enable(kdc_opts *o);
int kdc_cmd_disable(kdc_opts *o);
int kdc_cmd_export(kdc_opts *o);
int kdc_cmd_list(kdc_opts *o);  /* list.c */
int kdc_cmd_serve(kdc_opts *o); /* serve.c */

#endif
