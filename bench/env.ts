// Imported first by every bench entry: ES module imports are evaluated before the importing module's body,
// so the variable must be set in a module of its own to be in place before the library is loaded.
// WEIGHTPRESS_PREFER_LOCAL=1 makes load.ts try build/Release/weightpress.node before any prebuilt binary.
process.env.WEIGHTPRESS_PREFER_LOCAL = '1';
export {};
