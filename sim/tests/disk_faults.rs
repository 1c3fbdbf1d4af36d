//! The simulated disk keeps exactly what was synced, damages what was not, and each
//! injected fault does what it says.

use logjam_sim::{
    DiskConfig, DiskFault, SECTOR_BYTES, SimDisk, StreamId, broker_disk_config, stream,
};

fn disk_with_file(path: &str) -> SimDisk {
    let mut disk = SimDisk::new(broker_disk_config());
    disk.create_dir("d").unwrap();
    disk.create(path).unwrap();
    disk
}

fn synced(disk: &mut SimDisk, path: &str) {
    let ticket = disk.sync(path);
    let done = disk.complete_all_syncs();
    assert_eq!(done, vec![(ticket, Ok(()))]);
}

#[test]
fn only_what_was_synced_is_sure_to_survive_a_crash() {
    let mut rng = stream(1, StreamId::Disk(logjam_sim::NodeId(0)));
    let (mut lost, mut torn, mut kept) = (0, 0, 0);
    for _ in 0..200 {
        let mut disk = disk_with_file("d/f");
        synced(&mut disk, "d");
        disk.append("d/f", &[1; 1000]).unwrap();
        synced(&mut disk, "d/f");
        disk.append("d/f", &[2; 3000]).unwrap();
        assert_eq!(disk.len("d/f").unwrap(), 4000, "reads see unsynced writes");
        let damage = disk.crash(&mut rng);
        let content = disk.contents("d/f").expect("the name was synced").to_vec();
        assert_eq!(&content[..1000], &[1; 1000][..], "synced data lost");
        match content.len() {
            1000 => lost += 1,
            4000 => kept += 1,
            len => {
                assert_eq!(len as u64 % SECTOR_BYTES, 0, "torn at a sector boundary: {len}");
                assert!(content[1000..].iter().all(|&b| b == 2));
                torn += 1;
            }
        }
        assert_eq!(damage.writes_lost + damage.writes_torn + damage.writes_kept, 1);
    }
    assert!(lost > 30 && torn > 30 && kept > 30, "lost {lost}, torn {torn}, kept {kept}");
}

#[test]
fn names_are_durable_only_after_their_directory_syncs() {
    let mut rng = stream(2, StreamId::Disk(logjam_sim::NodeId(0)));
    let mut vanished = 0;
    for _ in 0..100 {
        let mut disk = disk_with_file("d/a");
        disk.append("d/a", b"data").unwrap();
        synced(&mut disk, "d/a"); // the data, not the name
        disk.crash(&mut rng);
        if disk.contents("d/a").is_none() {
            vanished += 1;
        }
    }
    assert!(vanished > 20, "an unsynced name always survived ({vanished} of 100 vanished)");
    let mut disk = disk_with_file("d/a");
    disk.append("d/a", b"data").unwrap();
    synced(&mut disk, "d/a");
    synced(&mut disk, "d");
    disk.rename("d/a", "d/b").unwrap();
    synced(&mut disk, "d");
    disk.crash(&mut rng);
    assert_eq!((disk.contents("d/a"), disk.contents("d/b")), (None, Some(&b"data"[..])));
}

#[test]
fn a_failed_sync_drops_the_dirty_pages_and_a_later_sync_lies() {
    let mut rng = stream(3, StreamId::Disk(logjam_sim::NodeId(0)));
    let mut disk = disk_with_file("d/f");
    synced(&mut disk, "d");
    disk.append("d/f", b"precious").unwrap();
    disk.inject(DiskFault::FailSync, &mut rng);
    let ticket = disk.sync("d/f");
    let results = disk.complete_all_syncs();
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].0, ticket);
    assert!(results[0].1.is_err(), "the sync should fail");
    assert_eq!(disk.contents("d/f"), Some(&b"precious"[..]), "the page cache still shows it");
    synced(&mut disk, "d/f"); // succeeds: nothing is dirty any more
    disk.crash(&mut rng);
    assert_eq!(disk.contents("d/f"), Some(&b""[..]), "the data never reached the disk");
}

#[test]
fn bit_rot_flips_one_bit_of_durable_data() {
    let mut rng = stream(4, StreamId::Disk(logjam_sim::NodeId(0)));
    let mut disk = disk_with_file("d/f");
    disk.append("d/f", &[0; 4096]).unwrap();
    synced(&mut disk, "d/f");
    disk.inject(DiskFault::BitRot, &mut rng);
    let flipped: u32 = disk.contents("d/f").unwrap().iter().map(|b| b.count_ones()).sum();
    assert_eq!(flipped, 1);
}

#[test]
fn a_latent_sector_error_fails_reads_of_that_sector_until_rewritten() {
    let mut rng = stream(5, StreamId::Disk(logjam_sim::NodeId(0)));
    let mut disk = disk_with_file("d/f");
    disk.append("d/f", &[7; 512]).unwrap();
    disk.inject(DiskFault::LatentSectorError, &mut rng);
    let mut buf = [0u8; 16];
    let error = disk.read_at("d/f", 100, &mut buf).unwrap_err();
    assert!(error.to_string().contains("latent sector error"), "{error}");
    disk.truncate("d/f", 0).unwrap();
    disk.append("d/f", &[8; 512]).unwrap();
    assert_eq!(disk.read_at("d/f", 100, &mut buf).unwrap(), 16, "a rewritten sector reads again");
}

#[test]
fn a_misdirected_write_lands_elsewhere_and_leaves_zeros_behind() {
    let mut rng = stream(6, StreamId::Disk(logjam_sim::NodeId(0)));
    let mut disk = disk_with_file("d/f");
    disk.append("d/f", &[1; 4096]).unwrap();
    disk.inject(DiskFault::MisdirectWrite, &mut rng);
    disk.append("d/f", &[2; 512]).unwrap();
    let content = disk.contents("d/f").unwrap();
    assert_eq!(content.len(), 4608);
    assert_ne!(&content[4096..], &[2; 512][..], "the write landed where it belonged");
    assert!(content.contains(&2), "the write vanished instead of landing elsewhere");
    disk.append("d/f", &[3; 10]).unwrap();
    assert_eq!(
        &disk.contents("d/f").unwrap()[4608..],
        &[3; 10][..],
        "only one write is misdirected"
    );
}

#[test]
fn out_of_space_refuses_writes_past_the_quota_until_healed() {
    let mut rng = stream(7, StreamId::Disk(logjam_sim::NodeId(0)));
    let mut disk = disk_with_file("d/f");
    disk.inject(DiskFault::OutOfSpace { free_bytes: 100 }, &mut rng);
    disk.append("d/f", &[0; 100]).unwrap();
    let error = disk.append("d/f", &[0; 1]).unwrap_err();
    assert_eq!(error.to_string(), "d/f: no space left on device");
    disk.inject(DiskFault::Heal, &mut rng);
    disk.append("d/f", &[0; 1]).unwrap();
}

#[test]
fn writeback_bounds_unsynced_memory() {
    let config = DiskConfig { writeback_bytes_max: 10_000, ..DiskConfig::default() };
    let mut disk = SimDisk::new(config);
    disk.create_dir("d").unwrap();
    disk.create("d/f").unwrap();
    synced(&mut disk, "d");
    for _ in 0..100 {
        disk.append("d/f", &[9; 1000]).unwrap();
    }
    let mut rng = stream(8, StreamId::Disk(logjam_sim::NodeId(0)));
    disk.crash(&mut rng);
    assert!(disk.len("d/f").unwrap() >= 90_000, "written-back data must survive");
}
