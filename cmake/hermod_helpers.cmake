# hermod_add_test(NAME name SOURCES a.cc b.cc LIBS lib... [LABELS l...] [ENVIRONMENT k=v...])
# One helper adds every GoogleTest binary: executable, links, discovery, labels, and the
# environment its tests run in (generator expressions allowed, e.g. $<TARGET_FILE:hermod>).
include(GoogleTest)
function(hermod_add_test)
  cmake_parse_arguments(T "" "NAME" "SOURCES;LIBS;LABELS;ENVIRONMENT" ${ARGN})
  add_executable(${T_NAME} ${T_SOURCES})
  target_link_libraries(${T_NAME} PRIVATE ${T_LIBS} GTest::gtest GTest::gtest_main)
  set_target_properties(${T_NAME} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
  # Labels and environment are lists, which do not survive the script gtest_discover_tests
  # generates; a file that ctest reads after the discovered tests sets them on each of them.
  gtest_discover_tests(${T_NAME} DISCOVERY_TIMEOUT 60)
  set(_labels unit ${T_LABELS})
  set(_properties "${CMAKE_CURRENT_BINARY_DIR}/${T_NAME}_properties.cmake")
  file(GENERATE OUTPUT "${_properties}" CONTENT
"if(DEFINED ${T_NAME}_TESTS)
  set_tests_properties(\${${T_NAME}_TESTS} PROPERTIES
    LABELS [==[${_labels}]==] ENVIRONMENT [==[${T_ENVIRONMENT}]==])
endif()
")
  set_property(DIRECTORY APPEND PROPERTY TEST_INCLUDE_FILES "${_properties}")
endfunction()

# hermod_add_fuzzer(NAME name SOURCES a.cc LIBS lib... CORPUS dir)
# A libFuzzer target plus a short bounded run over its seed corpus as a ctest (10 s: a smoke;
# longer runs are for a developer's machine).
function(hermod_add_fuzzer)
  cmake_parse_arguments(F "" "NAME;CORPUS" "SOURCES;LIBS" ${ARGN})
  add_executable(${F_NAME} ${F_SOURCES})
  target_link_options(${F_NAME} PRIVATE -fsanitize=fuzzer)
  target_link_libraries(${F_NAME} PRIVATE ${F_LIBS})
  set_target_properties(${F_NAME} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/fuzz)
  set(_work ${CMAKE_BINARY_DIR}/fuzz/${F_NAME}-corpus)
  add_test(NAME fuzz.${F_NAME}
    COMMAND sh -c "mkdir -p ${_work} && exec $<TARGET_FILE:${F_NAME}> -max_total_time=10 -rss_limit_mb=2048 -max_len=65536 -seed=1 ${_work} ${F_CORPUS}")
  set_tests_properties(fuzz.${F_NAME} PROPERTIES LABELS fuzz TIMEOUT 120)
endfunction()
