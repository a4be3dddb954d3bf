/* libFuzzer: a configuration file through the YAML loader, schema and rule compiler. */
#include <stddef.h>
#include <stdint.h>

#include "hearth/config.h"
#include "hearth/rules.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char errors[4096];
	struct config *cfg = config_load_string((const char *)data, size, "fuzz.yaml", errors,
						 sizeof(errors));

	if (cfg) {
		struct ruleset *rs = ruleset_compile(cfg, errors, sizeof(errors));
		ruleset_free(rs);
		config_free(cfg);
	}
	return 0;
}
