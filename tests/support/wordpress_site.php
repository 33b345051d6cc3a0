<?php
// Drives a real WordPress through its own PHP functions, for tests/test_wordpress_real.py.
//
//   php wordpress_site.php DOCROOT ACTION < request.json  ->  one JSON object on stdout
//
// Every change goes through the functions the editor's screens call (wp_install,
// wp_insert_post, wp_update_post, bulk_edit_posts, wp_publish_post as cron calls it,
// WP_Application_Passwords), never through SQL.

// No mail leaves the machine: wp_install() would send the admin a welcome message.
function wp_mail() {
	return true;
}

define( 'WP_INSTALLING', 'install' === $argv[2] );
$_SERVER['HTTP_HOST']   = 'localhost';
$_SERVER['REQUEST_URI'] = '/';
require $argv[1] . '/wp-load.php';
require_once ABSPATH . 'wp-admin/includes/upgrade.php';
require_once ABSPATH . 'wp-admin/includes/post.php';

$request = json_decode( stream_get_contents( STDIN ), true );
$result  = array();

function fail( $what, $error ) {
	fwrite( STDERR, $what . ': ' . ( is_wp_error( $error ) ? $error->get_error_message() : var_export( $error, true ) ) . "\n" );
	exit( 1 );
}

function checked_post( $data, $what ) {
	$id = wp_insert_post( wp_slash( $data ), true );
	if ( is_wp_error( $id ) ) {
		fail( $what, $id );
	}
	return $id;
}

function category_ids( $names ) {
	$ids = array();
	foreach ( $names as $name ) {
		$term = term_exists( $name, 'category' );
		if ( ! $term ) {
			$term = wp_insert_term( $name, 'category' );
		}
		if ( is_wp_error( $term ) ) {
			fail( "category $name", $term );
		}
		$ids[] = (int) $term['term_id'];
	}
	return $ids;
}

function row( $id ) {
	$post = get_post( $id );
	return array(
		'id'                => $post->ID,
		'guid'              => $post->guid,
		'status'            => $post->post_status,
		'post_date_gmt'     => $post->post_date_gmt,
		'post_modified_gmt' => $post->post_modified_gmt,
	);
}

switch ( $argv[2] ) {
	case 'install':
		$installed = wp_install( 'KCrush', 'editor', 'editor@example.com', false, '', wp_generate_password( 24 ) );
		update_option( 'timezone_string', $request['timezone'] );
		update_option( 'permalink_structure', '/%postname%/' );
		flush_rewrite_rules( false );
		wp_set_current_user( $installed['user_id'] );
		$ids = array();
		foreach ( $request['posts'] as $post ) {
			// post_date is site-local: the record's time read in the site's zone.
			$local = get_date_from_gmt( gmdate( 'Y-m-d H:i:s', $post['published'] ) );
			$ids[] = checked_post(
				array(
					'post_title'    => $post['title'],
					'post_content'  => $post['content'],
					'post_excerpt'  => $post['summary'],
					'post_status'   => 'publish',
					'post_date'     => $local,
					'post_category' => category_ids( $post['categories'] ),
					'post_author'   => $installed['user_id'],
				),
				'post'
			);
		}
		wp_delete_post( 1, true ); // "Hello world!"
		$app = WP_Application_Passwords::create_new_application_password(
			$installed['user_id'],
			array( 'name' => 'kcrush-feeds' )
		);
		if ( is_wp_error( $app ) ) {
			fail( 'application password', $app );
		}
		$result = array(
			'user'     => 'editor',
			'password' => WP_Application_Passwords::chunk_password( $app[0] ),
			'ids'      => $ids,
			'guids'    => array_map( 'get_the_guid', $ids ),
		);
		break;

	case 'edit':
		// The editor opens a post and saves it: modified becomes now.
		wp_set_current_user( 1 );
		$id = wp_update_post( wp_slash( array( 'ID' => $request['id'], 'post_title' => $request['title'] ) ), true );
		if ( is_wp_error( $id ) ) {
			fail( 'edit', $id );
		}
		$result = row( $id );
		break;

	case 'schedule':
		// A draft, then the editor presses "Schedule". "pressed_ago" seconds stand for the
		// days between pressing the button and cron publishing the post: WordPress takes
		// the modified date from the clock, so the save is shifted through its own filter.
		wp_set_current_user( 1 );
		$id = checked_post(
			array(
				'post_title'    => $request['title'],
				'post_content'  => 'Scheduled.',
				'post_status'   => 'draft',
				'post_category' => category_ids( array( 'K-Pop Interviews' ) ),
			),
			'draft'
		);
		$pressed = time() - $request['pressed_ago'];
		$shift   = function ( $data ) use ( $pressed ) {
			$data['post_modified_gmt'] = gmdate( 'Y-m-d H:i:s', $pressed );
			$data['post_modified']     = get_date_from_gmt( $data['post_modified_gmt'] );
			return $data;
		};
		add_filter( 'wp_insert_post_data', $shift );
		$publish = get_date_from_gmt( gmdate( 'Y-m-d H:i:s', time() + $request['in'] ) );
		$updated = wp_update_post(
			array(
				'ID'            => $id,
				'post_status'   => 'future',
				'post_date'     => $publish,
				'post_date_gmt' => get_gmt_from_date( $publish ),
				'edit_date'     => true,
			),
			true
		);
		remove_filter( 'wp_insert_post_data', $shift );
		if ( is_wp_error( $updated ) ) {
			fail( 'schedule', $updated );
		}
		$result = row( $id );
		break;

	case 'create_scheduled':
		// Created scheduled in one go (wp_insert_post, as the REST API and WP-CLI do).
		wp_set_current_user( 1 );
		$publish = get_date_from_gmt( gmdate( 'Y-m-d H:i:s', time() + $request['in'] ) );
		$id      = checked_post(
			array(
				'post_title'    => $request['title'],
				'post_content'  => 'Scheduled a month ahead.',
				'post_status'   => 'future',
				'post_date'     => $publish,
				'post_category' => category_ids( array( 'K-Pop Articles' ) ),
			),
			'scheduled post'
		);
		$result  = row( $id );
		break;

	case 'cron_publish':
		// What wp-cron's publish_future_post hook (check_and_publish_future_post) calls once
		// the post is due. WordPress schedules no less than a minute ahead, so the test
		// does not wait for the minute: it calls the publishing function itself.
		wp_publish_post( $request['id'] );
		$result = row( $request['id'] );
		break;

	case 'bulk_edit':
		// Posts > select > Bulk actions > Edit > add a category > Update.
		wp_set_current_user( 1 );
		$_REQUEST['_status'] = -1;
		$done = bulk_edit_posts(
			array(
				'post'          => $request['ids'],
				'post_type'     => 'post',
				'_status'       => -1,
				'post_category' => category_ids( array( $request['category'] ) ),
			)
		);
		$seconds = array();
		foreach ( $request['ids'] as $id ) {
			$seconds[ get_post( $id )->post_modified_gmt ] = true;
		}
		$result = array(
			'updated'  => count( $done['updated'] ),
			'seconds'  => count( $seconds ),
		);
		break;

	default:
		fail( 'action', $argv[2] );
}

echo json_encode( $result ), "\n";
