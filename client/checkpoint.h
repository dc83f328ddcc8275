/*
 * checkpoint.h - libvmingest-client's checkpoint file (internal).
 *
 *   checkpoint_read   parse a checkpoint: 0, 1 if the file does not exist,
 *                     -1 if it is unreadable or malformed (err says why)
 *   checkpoint_write  write atomically: PATH.tmp, fsync, rename, fsync dir
 *   checkpoint_free   release what checkpoint_read allocated
 *
 * Format (text, one item a line, written by checkpoint_write only):
 *   vmingest-checkpoint 1
 *   epoch 0123456789abcdef      (hex)
 *   seq 1234                    (every record up to this seq processed)
 *   topic rn.phd 55             (last processed topic_seq per topic)
 *
 * SECURITY: the file is the consumer's own state, but it is parsed
 * strictly (bounded lines, topic alphabet, CHECKPOINT_MAX_TOPICS).
 */
#ifndef VMI_CHECKPOINT_H
#define VMI_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#define CHECKPOINT_MAX_TOPICS	100000

struct checkpoint_topic {
	char	*topic;
	uint64_t ts;
};

struct checkpoint {
	uint64_t epoch;
	uint64_t seq;
	struct checkpoint_topic *topics;
	size_t	 n_topics;
};

int	checkpoint_read(const char *path, struct checkpoint *, char *err, size_t errlen);
int	checkpoint_write(const char *path, const struct checkpoint *);
void	checkpoint_free(struct checkpoint *);

#endif
