/* The body of the layer-check executables (daemon/meson.build): linking a layer's
 * library whole with only the libraries of the layers it may use fails on any call that
 * breaks the rules. Nothing runs. */
int main(void) { return 0; }
