/* cmd_summary.c: gradc summary (not yet written). */
#include "cmds.h"

int cmd_summary(int argc, char **argv) {
    (void)argc, (void)argv;
    return usage_error("summary", "not yet implemented");
}
