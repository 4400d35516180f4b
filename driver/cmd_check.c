/* cmd_check.c: gradc check (not yet written). */
#include "cmds.h"

int cmd_check(int argc, char **argv) {
    (void)argc, (void)argv;
    return usage_error("check", "not yet implemented");
}
