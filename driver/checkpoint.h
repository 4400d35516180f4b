/* checkpoint.h: what the train command adds to the runtime's checkpoints:
 * the class names of string labels, and stopping on SIGINT or SIGTERM with
 * the work saved. Part of the run library (gradc and built programs): no
 * front end here.
 *
 * The runtime stores and restores whatever metadata the driver passes; the
 * policy (what identifies a model, when to save, what a signal means) lives
 * here, in the driver.
 */
#ifndef GRADC_DRIVER_CHECKPOINT_H
#define GRADC_DRIVER_CHECKPOINT_H

#include <signal.h>

#include "runtime/rt.h"

/* ---- the model hash ---------------------------------------------------------
 * What must match for --resume to continue a run, computed by the compiler
 * (compile.h: ckpt_model_hash) and stored as 16 lowercase hex digits. */
enum { CKPT_HASH_LEN = 17 };

/* ---- class names --------------------------------------------------------------
 * The class names of a string label column, in id order, as one metadata
 * value: the names joined by line breaks. NULL when there are none or they
 * cannot be stored that way (a name with a line break, or not UTF-8). The
 * result is malloc'd. */
char *ckpt_classes_to_string(int n, char *const *names);
/* The names back from such a string: *names is malloc'd, each name points
 * into s (which it modifies: line breaks become NULs). */
int ckpt_classes_from_string(char *s, const char ***names);

/* ---- stop signals --------------------------------------------------------------
 * ckpt_catch_signals installs handlers for SIGINT and SIGTERM: the first
 * signal sets ckpt_stop_signal to its number (rt_train reads it through
 * RtTrainConfig.stop, finishes the step and returns) and says so on stderr
 * unless quiet (the messages start with name: "gradc", or a built
 * program's name; the processes of a data-parallel run but process 0 are
 * quiet); a second one quits at once with status 128 + signal, unless a
 * checkpoint is being saved (ckpt_save), which then finishes first.
 * ckpt_release_signals puts the default actions back. */
extern volatile sig_atomic_t ckpt_stop_signal;
void ckpt_catch_signals(const char *name, bool quiet);
void ckpt_release_signals(void);
/* "SIGINT", "SIGTERM" or "signal N". */
const char *ckpt_signal_name(int sig);

/* rt_save_checkpoint, safe from the stop signals: a second signal that
 * arrives meanwhile quits (status 128 + signal) only once the file is
 * complete and in place. */
RtStatus ckpt_save(const RtSession *s, const char *path, int nmeta, const char *const *keys,
                   const char *const *values, RtError *err);

#endif
