profile-2sec
{
}
