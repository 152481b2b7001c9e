/* The series of figures fq_bench takes and their report, as text or as one
 * JSON object a line. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

void series_init(series *s, int reps)
{
    s->fq = calloc((size_t)reps, sizeof(double));
    s->base = calloc((size_t)reps, sizeof(double));
    s->fq_cross = calloc((size_t)reps, sizeof(double));
    s->base_cross = calloc((size_t)reps, sizeof(double));
    s->job_us = calloc((size_t)reps, sizeof(double));
    s->fq_other = calloc((size_t)reps, sizeof(double));
    s->base_other = calloc((size_t)reps, sizeof(double));
    s->cap = calloc((size_t)reps, sizeof(double));
    if (!s->cap || !s->fq || !s->base || !s->fq_cross || !s->base_cross ||
        !s->job_us || !s->fq_other || !s->base_other)
        die("out of memory");
}

void series_free(series *s)
{
    free(s->fq);
    free(s->base);
    free(s->fq_cross);
    free(s->base_cross);
    free(s->job_us);
    free(s->fq_other);
    free(s->base_other);
    free(s->cap);
}

void series_record(series *s, int rep, const run_info *fq, const run_info *base)
{
    s->fq[rep] = fq->value;
    s->fq_cross[rep] = fq->cross;
    s->fq_other[rep] = fq->other;
    s->fq_where = fq->where;
    s->base[rep] = base->value;
    s->base_cross[rep] = base->cross;
    s->base_other[rep] = base->other;
    s->base_where = base->where;
}

static void json_num(const char *key, double v)
{
    if (isfinite(v))
        printf(",\"%s\":%.6g", key, v);
    else
        printf(",\"%s\":null", key);
}

static int target_met(const series *s, double ratio)
{
    return strcmp(s->better, "lower") == 0 ? ratio <= s->target
                                           : ratio >= s->target;
}

void report(const series *s, int reps, int json)
{
    double fm = median(s->fq, reps), bm = median(s->base, reps);
    double ratio = fm / bm;
    int met = target_met(s, ratio);
    double fc = s->fq_cross[0] >= 0 ? median(s->fq_cross, reps) : -1;
    double bc = s->base_cross[0] >= 0 ? median(s->base_cross, reps) : -1;
    double ju = s->job_us[0] > 0 ? median(s->job_us, reps) : -1;
    if (json) {
        printf("{\"name\":\"%s\"", s->name);
        json_num("value", fm);
        printf(",\"unit\":\"%s\"", s->unit);
        json_num("baseline_ratio", ratio);
        printf(",\"placement\":\"%s\"", s->placement);
        json_num("min", vmin(s->fq, reps));
        json_num("max", vmax(s->fq, reps));
        printf(",\"baseline\":\"%s\"", s->baseline);
        json_num("baseline_value", bm);
        json_num("baseline_min", vmin(s->base, reps));
        json_num("baseline_max", vmax(s->base, reps));
        printf(",\"better\":\"%s\"", s->better);
        if (s->target > 0) {
            json_num("target", s->target);
            printf(",\"target_met\":%s", met ? "true" : "false");
        } else {
            printf(",\"target\":null,\"target_met\":null");
        }
        printf(",\"reps\":%d,\"count\":%ld,\"workers\":%d", reps, s->count,
               s->workers);
        if (fc >= 0)
            json_num("cross_cpu_fraction", fc);
        if (bc >= 0)
            json_num("baseline_cross_cpu_fraction", bc);
        if (ju > 0)
            json_num("job_us", ju);
        if (s->cap[0] > 0) {
            double cm = median(s->cap, reps);
            json_num("capacity_value", cm);
            json_num("capacity_ratio", cm / bm);
        }
        json_num("other_cpu", median_known(s->fq_other, reps));
        json_num("other_cpu_max", max_known(s->fq_other, reps));
        json_num("baseline_other_cpu", median_known(s->base_other, reps));
        json_num("baseline_other_cpu_max", max_known(s->base_other, reps));
        printf(",\"cpus\":\"%s\",\"baseline_cpus\":\"%s\"", s->fq_where.text,
               s->base_where.text);
        json_num("load1", load1());
        printf("}\n");
    } else {
        printf("%-21s %-9s %10.4g %-6s [%.4g..%.4g]  %-20s %10.4g "
               "[%.4g..%.4g]  ratio %.3g",
               s->name, s->placement, fm, s->unit, vmin(s->fq, reps),
               vmax(s->fq, reps), s->baseline, bm, vmin(s->base, reps),
               vmax(s->base, reps), ratio);
        if (s->target > 0)
            printf(" (target %s %.3g: %s)\n",
                   strcmp(s->better, "lower") == 0 ? "<=" : ">=", s->target,
                   met ? "met" : "MISSED");
        else
            printf(" (no target: a figure to follow)\n");
        if (fc >= 0)
            printf("    cross-CPU round trips: forkqueue %.0f%%, baseline "
                   "%.0f%%\n",
                   fc * 100, bc * 100);
        if (ju > 0)
            printf("    measured job time: %.1f us\n", ju);
        if (s->cap[0] > 0)
            printf("    two forked loops without communication: %.4g jobs/s, "
                   "%.3gx the sequential loop (the machine's ceiling)\n",
                   median(s->cap, reps), median(s->cap, reps) / bm);
        printf("    CPU used by other processes: forkqueue runs %.0f%% "
               "(max %.0f%%), baseline runs %.0f%% (max %.0f%%)\n",
               median_known(s->fq_other, reps) * 100,
               max_known(s->fq_other, reps) * 100,
               median_known(s->base_other, reps) * 100,
               max_known(s->base_other, reps) * 100);
        printf("    forkqueue ran at: %s\n    baseline ran at:  %s\n",
               s->fq_where.text, s->base_where.text);
    }
    fflush(stdout);
}
