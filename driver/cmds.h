/* cmds.h: gradc's commands beyond train, predict and eval (one file each,
 * cmd_<name>.c) and what every command of the gradc executable shares.
 */
#ifndef GRADC_DRIVER_CMDS_H
#define GRADC_DRIVER_CMDS_H

#include "run.h"

enum { EXIT_USER = RUN_EXIT_USER, EXIT_USAGE = RUN_EXIT_USAGE };

/* The gradc executable as the run library sees it (messages "gradc ..."). */
extern const RunCli gradc_cli;

/* "gradc CMD: message" and where to find help on stderr; returns
 * EXIT_USAGE. */
int usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The commands; argv[1] is the command's name, as main receives it. */
int cmd_grad(int argc, char **argv);
int cmd_emit(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_summary(int argc, char **argv);

#endif
