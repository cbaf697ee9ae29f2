/* The benchmark's results: one table on stdout and the same figures as a
 * JSON document (under bench/results/). Each phase adds its section; the
 * figures that have a target are checked against it here, in one place. */
#ifndef BENCH_REPORT_H
#define BENCH_REPORT_H

#include "cycles.h"
#include "held_calls.h"
#include "presence_load.h"

struct report;

struct report *report_new(void);
/* Machine and versions: cores, CPU model, kernel, memory, and the given
 * version strings (borrowed for the call). */
void report_machine(struct report *rep, const char *mosquitto, const char *service, const char *paho,
		    const char *mhd);
/* The state engine ("memory" or "redis") and the instances of the cycle phases. */
void report_engine(struct report *rep, const char *engine, int instances);
/* The generator's command line, for the record. */
void report_command(struct report *rep, int argc, char **argv);
void report_cycles(struct report *rep, const char *key, const char *title, const struct cycle_opts *o,
		   struct cycle_result *r);
/* After the saturation sweep: the curve, the best run and its target. */
void report_saturation(struct report *rep);
void report_endurance(struct report *rep, const struct cycle_opts *o, struct cycle_result *r);
void report_presence(struct report *rep, const struct presence_opts *o, const struct presence_result *r);
void report_held(struct report *rep, const struct held_opts *o, const struct held_result *r);
/* A phase that could not run at all. */
void report_failure(struct report *rep, const char *key, const char *what);
/* Prints the table, writes the JSON (json_path may be NULL) and frees.
 * Returns 0 when no phase saw an error (lost or out-of-order events, HTTP
 * errors, a wrong count); missed targets are reported, not failures. */
int report_finish(struct report *rep, const char *json_path);

#endif
