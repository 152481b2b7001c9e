/* The figure groups of fq_bench, one file each, over the harness. */
#ifndef FQ_BENCH_FIGURES_H
#define FQ_BENCH_FIGURES_H

#include "harness.h"

/* Latency (latency.c): one job at a time on one worker, versus a
 * socketpair ping-pong; a round trip returns the CPU the other side ran
 * on. */
typedef uint64_t (*roundtrip_fn)(void *ctx, long i);
void measure_roundtrips(roundtrip_fn trip, void *ctx, const pid_t *kids, int n,
                        long pm0, long iters, run_info *out);
void run_pingpong(enum placement pl, long iters, run_info *out);
void run_fq_latency_with(enum placement pl, long iters, roundtrip_fn trip,
                         run_info *out);
void run_fq_latency(enum placement pl, long iters, run_info *out);

/* Throughput (throughput.c). */
void run_farm(long njobs, int window, run_info *out);
void run_fq_throughput_kind(int kind, int ordered, const bench_opts *bo,
                            run_info *out);

/* Job handles (handles.c). */
void run_fq_latency_jobs(enum placement pl, long iters, run_info *out);
void run_fq_throughput_jobs(const bench_opts *bo, run_info *out);

/* CPU-bound speed-up (cpu.c). */
void run_sequential(long njobs, run_info *out);
void run_forked_loops(long njobs, run_info *out);
void run_fq_cpu(const bench_opts *bo, run_info *out);

#endif
