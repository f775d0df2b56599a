/**
 * What the codec packages' Emscripten glue gets for `require('fs')` / `require('path')` in the page: nothing. The glue
 * only uses them when it runs under Node (its ENVIRONMENT_IS_NODE branch); the page hands it the wasm bytes itself.
 */
export default {};
