# mcaconv_component(NAME DEPS ...): a static library mcaconv_NAME from src/NAME/*.cc, tests excluded.
function(mcaconv_component name)
  cmake_parse_arguments(ARG "" "" "DEPS" ${ARGN})
  file(GLOB sources CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/src/${name}/*.cc)
  list(FILTER sources EXCLUDE REGEX "_test\\.cc$")
  if(sources)
    add_library(mcaconv_${name} STATIC ${sources})
    set(scope PUBLIC)
  else()
    # A component still being written has headers only.
    add_library(mcaconv_${name} INTERFACE)
    set(scope INTERFACE)
  endif()
  target_include_directories(mcaconv_${name} ${scope} ${PROJECT_SOURCE_DIR}/src)
  target_link_libraries(mcaconv_${name} ${scope} ${ARG_DEPS})
endfunction()

# mcaconv_component_tests(NAME): one gtest binary NAME_test from src/NAME/*_test.cc, if any.
function(mcaconv_component_tests name)
  file(GLOB tests CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/src/${name}/*_test.cc)
  if(NOT tests)
    return()
  endif()
  add_executable(${name}_test ${tests})
  target_link_libraries(${name}_test PRIVATE mcaconv_${name} GTest::gtest_main)
  target_compile_definitions(${name}_test PRIVATE
    MCACONV_TEST_DATA_DIR="${PROJECT_SOURCE_DIR}/tests/data")
  gtest_discover_tests(${name}_test DISCOVERY_TIMEOUT 60)
endfunction()
