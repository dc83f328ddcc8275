/*
 * cmds.h - the CLI's subcommands, one per client/cmd_NAME.c.
 *
 * Each returns the exit status; argv[0] is the subcommand name.  They are
 * declared weak so that vmingest.c can list every command and a build
 * without one still links (the dispatcher skips a NULL entry).
 */
#ifndef VMI_CMDS_H
#define VMI_CMDS_H

#define VMI_CMD(n) int cmd_##n(int argc, char **argv) __attribute__((weak));
VMI_CMD(list) VMI_CMD(show) VMI_CMD(stats) VMI_CMD(sub) VMI_CMD(keygen)
VMI_CMD(rules) VMI_CMD(status) VMI_CMD(replay) VMI_CMD(reprocess)
VMI_CMD(quarantine) VMI_CMD(compact) VMI_CMD(backup)
#undef VMI_CMD

#endif
