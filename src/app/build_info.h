#pragma once

// The commit and build type of this binary, defined in a source that CMake writes at configure
// time (src/app/CMakeLists.txt): a new commit recompiles that one small file, not main.cc.
namespace hermod::app {

extern const char kGitCommit[];
extern const char kBuildType[];

}  // namespace hermod::app
