//! Internal event macros that compile to nothing without the `tracing` feature.

#[cfg(feature = "tracing")]
#[allow(unused_macros)]
macro_rules! event {
    ($level:ident, $($arg:tt)*) => {
        ::tracing::$level!(target: "tower_perimeter", $($arg)*)
    };
}

#[cfg(not(feature = "tracing"))]
#[allow(unused_macros)]
macro_rules! event {
    ($level:ident, $($arg:tt)*) => {{}};
}

#[allow(unused_imports)]
pub(crate) use event;
