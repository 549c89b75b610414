{
  "targets": [
    {
      "target_name": "weightpress",
      "sources": ["<!@(node scripts/sources.mjs --gyp)"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")", "/usr/include/eigen3"],
      "defines": ["WP_BUILT_WITH_NODE_GYP", "EIGEN_MPL2_ONLY", "EIGEN_DONT_PARALLELIZE", "NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED", "WP_VERSION=\"<!(node -p \"require('./package.json').version\")\""],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc": ["-std=c++17", "-O3", "-fexceptions", "-ffp-contract=off"],
      "xcode_settings": {"GCC_ENABLE_CPP_EXCEPTIONS": "YES", "CLANG_CXX_LANGUAGE_STANDARD": "c++17", "MACOSX_DEPLOYMENT_TARGET": "11.0"}
    }
  ]
}
