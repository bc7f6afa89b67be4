{
  # The SEV-SNP guest ioctl addon. N-API only (NAPI_VERSION pinned) so one build loads in every
  # Node release we support; warnings are errors; only the module-registration symbol is exported.
  'targets': [
    {
      'target_name': 'snp_guest',
      'sources': ['native/addon.cc', 'native/get_report.cc'],
      'dependencies': ["<!(node -p \"require('node-addon-api').targets\"):node_addon_api"],
      'defines': ['NAPI_VERSION=8'],
      'cflags': ['-Wall', '-Wextra', '-Werror', '-fvisibility=hidden'],
      'cflags_cc!': ['-std=gnu++17', '-std=gnu++20'],
      'cflags_cc': ['-std=c++17', '-Wall', '-Wextra', '-Werror', '-fvisibility=hidden'],
      'conditions': [
        ["OS!='linux'", {
          # The ioctls exist only on Linux guests; elsewhere the loader reports the backend unavailable.
          'type': 'none',
          'sources!': ['native/addon.cc', 'native/get_report.cc']
        }]
      ]
    }
  ]
}
