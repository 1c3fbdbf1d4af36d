//! The search: scenario files and their configuration menus, the fault menus (nemesis),
//! seeds expanded into schedules and run, sweeps, shrinking, coverage, and proptest
//! strategies over schedules.

pub mod config_menu;
pub mod coverage;
pub mod nemesis;
pub mod run;
pub mod scenario;
pub mod schedule_file;
pub mod shrink;
pub mod strategy;
