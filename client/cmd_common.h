/*
 * cmd_common.h - what the CLI's subcommands share.
 *
 *   cli_open_store   open the store read-only from --store DIR, -c FILE or
 *                    the embedded default; prints the error and returns -1
 *   cli_load_config  load -c FILE (or the default); prints the error, NULL
 *   cli_parse_u64    strict decimal parse; 0 ok, -1 bad
 *   cli_print_json   print a json_t as one line and free it
 *   cli_fprint_json  the same, to fp
 *   cli_read_keyfile read a Z85 key file (vmingest keygen: 40 characters on
 *                    the first line) into key; prints the error, returns -1
 *   cli_recv_frames  receive one multipart message, keeping its first nmax
 *                    frames (the rest are dropped); returns how many kept
 *   cli_write_file   write a whole file under a temp name, then rename it:
 *                    nobody sees it half written
 *   cli_raw_matches  1 if raw bytes are the ones the record's sha256 names
 */
#ifndef VMI_CMD_COMMON_H
#define VMI_CMD_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include <jansson.h>
#include <zmq.h>

#include "config.h"
#include "store.h"

int	cli_open_store(const char *prog, const char *store_dir, const char *cfpath,
	    struct store **out);
struct config *cli_load_config(const char *prog, const char *cfpath);
int	cli_parse_u64(const char *s, uint64_t *out);
void	cli_print_json(json_t *);
void	cli_fprint_json(FILE *, json_t *);
int	cli_read_keyfile(const char *prog, const char *path, char key[41]);
int	cli_recv_frames(void *sock, zmq_msg_t *f, int nmax);
int	cli_write_file(int tdir, int ndir, const char *name, const void *p,
	    size_t n, mode_t mode, int sync);
int	cli_raw_matches(const Vmingest__Record *rec, const void *raw, size_t len);

#endif
