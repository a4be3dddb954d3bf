/* libFuzzer: a relay configuration through hearth-relay's loader (docs/RELAY.md). */
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../../relay/relay.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int fd = -1;
	char path[64];
	int nerrors = 0;

	/* the loader reads a file: an in-memory one keeps the fuzzer off the disk */
	if (fd < 0 && (fd = memfd_create("relay.yaml", 0)) < 0)
		return 0;
	if (ftruncate(fd, 0) < 0 || pwrite(fd, data, size, 0) != (ssize_t)size)
		return 0;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	struct relay_config *cfg = relay_config_load(path, &nerrors);
	if (cfg && nerrors)
		__builtin_trap(); /* a config is refused whole when it has any error */
	relay_config_free(cfg);
	return 0;
}
