/* Test plugin: a shared object that exports no axactor descriptor. */
__attribute__((visibility("default"))) int not_an_axactor_plugin(void);
int not_an_axactor_plugin(void) { return 42; }
