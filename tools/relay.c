/*
 * hearth-relay: pushes hearthd's alerts into team chat (SPEC §9).
 * Not built yet: it says so rather than pretending to run.
 */
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "--version") == 0) {
		printf("hearth-relay %s\n", HEARTH_VERSION);
		return 0;
	}
	fprintf(stderr, "hearth-relay: not yet implemented (see the relay issue)\n");
	return 1;
}
