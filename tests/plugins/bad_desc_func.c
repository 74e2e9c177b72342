/* Test plugin: exports the descriptor's name as a function, not an ax_plugin_desc. The
 * loader must refuse it without reading it as a descriptor. */
__attribute__((visibility("default"))) int axactor_plugin(void);
int axactor_plugin(void) { return 7; }
